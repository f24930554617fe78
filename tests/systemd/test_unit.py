"""Tests for systemd/pitwin.service: it verifies, and its sandbox is tight."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.install import Options, install

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "pitwin.service"
# systemd-analyze security: 0 is locked down, 10 is fully exposed.
MAX_EXPOSURE = 2.5

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian: apt-get install systemd)",
)


def systemd_analyze(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _system_unit_dir() -> Path | None:
    for candidate in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if (candidate / "sysinit.target").exists():
            return candidate
    return None


def _kernel_version() -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", platform.release())
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


SYSTEM_UNIT_DIR = _system_unit_dir()


@pytest.mark.skipif(
    SYSTEM_UNIT_DIR is None,
    reason="no systemd unit directory with sysinit.target on this machine",
)
def test_unit_verifies(tmp_path: Path) -> None:
    """Test that systemd-analyze verify finds nothing to say about the unit.

    It runs on a staging root made by the installer, with a stand-in for
    the venv's ``pitwin`` (verify checks that ExecStart= is executable) and
    the system's own units (for sysinit.target and the other defaults).
    """
    root = tmp_path / "root"
    install(Options(root=root, venv=False), say=lambda _: None)
    command = root / "opt/pitwin/venv/bin/pitwin"
    command.parent.mkdir(parents=True)
    command.write_text("#!/bin/sh\n")
    command.chmod(0o755)
    assert SYSTEM_UNIT_DIR is not None
    shutil.copytree(SYSTEM_UNIT_DIR, root / "usr/lib/systemd/system", symlinks=True)

    result = systemd_analyze("verify", f"--root={root}", "pitwin.service")

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_unit_security_exposure_is_low() -> None:
    """Test that systemd-analyze security rates the sandbox 2.5 or lower."""
    result = systemd_analyze("security", "--offline=yes", "--no-pager", UNIT)

    match = re.search(
        r"Overall exposure level for pitwin\.service: (\d+\.\d)", result.stdout
    )
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


MDWE_PROBE = """
import asyncio, base64, ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
# PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN: what MemoryDenyWriteExecute= asks.
if libc.prctl(65, 1, 0, 0, 0) != 0:
    sys.exit(77)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except OSError:
    pass
else:
    sys.exit("a writable and executable mapping was allowed")
import agent.cli, agent.supervisor, agent.notify, agent.clock, sqlite3, ssl
from azure.iot.device.aio import IoTHubModuleClient
callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)
assert callback(41) == 42
key = base64.b64encode(bytes(32)).decode()
async def build():
    client = IoTHubModuleClient.create_from_connection_string(
        f"HostName=hub.invalid;DeviceId=d;ModuleId=m;SharedAccessKey={key}",
        connection_retry=False,
    )
    await client.shutdown()
asyncio.run(build())
"""


@pytest.mark.skipif(
    _kernel_version() < (6, 3),
    reason="this kernel has no PR_SET_MDWE (Linux 6.3 or later needed)",
)
def test_agent_needs_no_writable_executable_memory() -> None:
    """Test that MemoryDenyWriteExecute= cannot break the agent's runtime."""
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", MDWE_PROBE],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=60,
    )

    assert (result.returncode, result.stderr) == (0, "")
