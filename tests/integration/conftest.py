"""Fixtures for end-to-end tests: a dev hub on loopback and agent processes.

The agent runs as a real ``pitwin run`` process with the real SDK; the test
reads its log lines to see what it applied, and the dev hub's service side
to see what it reported and sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from devhub.hub import DevHub

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
OFFICE_TRACE = SHARED_DATA / "occupancy-office-2015.txt"
DEVICE_ID = "pi-test"
SENSOR_MODULES = ("moisture", "light", "temperature")
DRIVERS = {
    "moisture": "simulated-moisture",
    "light": "simulated-light",
    "temperature": "simulated-temperature",
}
# A deadline for things that should happen within a second or two, so a
# broken build fails instead of hanging; no test asserts how long it took.
WAIT_S = 60.0

_hosts = itertools.count(2)
_subnet = 100 + os.getpid() % 100


@pytest.fixture
def hub_host() -> str:
    """Give each test its own loopback address (the MQTT port is fixed)."""
    return f"127.{_subnet}.0.{next(_hosts) % 250 + 2}"


@pytest.fixture
async def hub(tmp_path: Path, hub_host: str) -> AsyncIterator[DevHub]:
    """A running dev hub with the test device and its sensor modules."""
    dev_hub = DevHub(tmp_path / "hub", host=hub_host)
    await dev_hub.start()
    dev_hub.add_device(DEVICE_ID)
    for module_id in SENSOR_MODULES:
        dev_hub.add_module(DEVICE_ID, module_id)
    yield dev_hub
    await dev_hub.stop()


class AgentProcess:
    """A ``pitwin`` process whose log lines the test can wait for."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.lines: list[str] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._new_line = asyncio.Event()

    async def start(self) -> None:
        """Start the process."""
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent.cli",
            *self.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"},
        )
        self._reader = asyncio.create_task(self._read())

    @property
    def pid(self) -> int:
        """The process id."""
        assert self._proc is not None
        return self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the process is still alive."""
        return self._proc is not None and self._proc.returncode is None

    def matching(self, pattern: str) -> list[str]:
        """Return the log lines so far that match ``pattern``."""
        regex = re.compile(pattern)
        return [line for line in self.lines if regex.search(line)]

    async def wait_for(self, pattern: str, *, count: int = 1) -> list[str]:
        """Wait until ``count`` log lines match ``pattern``; return them."""
        try:
            async with asyncio.timeout(WAIT_S):
                while len(found := self.matching(pattern)) < count:
                    self._new_line.clear()
                    if not self.running and self._reader and self._reader.done():
                        break
                    await self._new_line.wait()
        except TimeoutError:
            pass
        if len(found) < count:
            tail = "\n".join(self.lines[-40:])
            pytest.fail(f"agent never logged {pattern!r} x{count}; last lines:\n{tail}")
        return found

    def kill(self) -> None:
        """Kill the process with SIGKILL, as the OOM killer or a crash would."""
        assert self._proc is not None
        self._proc.kill()

    async def stop(self, signum: int = signal.SIGTERM) -> int | None:
        """Stop the process (SIGKILL if it does not exit); return its status."""
        if self._proc is None:
            return None
        if self._proc.returncode is None:
            self._proc.send_signal(signum)
            try:
                async with asyncio.timeout(20):
                    await self._proc.wait()
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        if self._reader is not None:
            await self._reader
        return self._proc.returncode

    async def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stderr is not None
        async for raw in self._proc.stderr:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
            self._new_line.set()
        self._new_line.set()


def write_agent_config(
    path: Path,
    hub: DevHub,
    *,
    keys: Mapping[str, str],
    drivers: Mapping[str, str] | None = None,
    sensors: Mapping[str, Mapping[str, Any]] | None = None,
    properties: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write an agent config for the test device and return its path."""
    drivers = drivers or {m: DRIVERS[m] for m in keys}
    sensors = sensors or {}
    properties = properties or {}
    ca_path = path.parent / "hub-ca.pem"
    ca_path.write_text(hub.ca_pem)
    lines = [
        "[device]",
        f"id = {_toml(DEVICE_ID)}",
        f"hub_hostname = {_toml(hub.hostname)}",
        f"gateway_host = {_toml(hub.host)}",
        f"ca_file = {_toml(ca_path.name)}",
        'state_dir = "agent-state"',
        "",
        "[link]",
        "backoff_base_s = 0.2",
        "backoff_cap_s = 1.0",
        "call_timeout_s = 10",
        "",
        "[outbox]",
        "max_latency_s = 0.5",
        "commit_interval_s = 1",
        "",
    ]
    for module_id, key in keys.items():
        lines += [
            f"[modules.{module_id}]",
            f"driver = {_toml(drivers[module_id])}",
            f"key = {_toml(key)}",
            f"[modules.{module_id}.sensor]",
            *(f"{k} = {_toml(v)}" for k, v in sensors.get(module_id, {}).items()),
            f"[modules.{module_id}.properties]",
            *(f"{k} = {_toml(v)}" for k, v in properties.get(module_id, {}).items()),
            "",
        ]
    path.write_text("\n".join(lines))
    path.chmod(0o600)
    return path


def _toml(value: Any) -> str:
    # JSON spells strings, numbers and booleans the way TOML does.
    return json.dumps(value)


@pytest.fixture
def module_keys(hub: DevHub) -> dict[str, str]:
    """The primary key of each sensor module of the test device."""
    return {m: hub.get_identity(DEVICE_ID, m).primary_key for m in SENSOR_MODULES}


@pytest.fixture
async def start_agent(
    tmp_path: Path,
) -> AsyncIterator[Callable[[Path], Any]]:
    """Start agent processes from config files; all are stopped afterwards."""
    started: list[AgentProcess] = []

    async def start(config_path: Path, *, verbose: bool = False) -> AgentProcess:
        args = ["--verbose"] if verbose else []
        process = AgentProcess(*args, "run", "--config", str(config_path))
        await process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            await process.stop()


async def eventually(
    check: Callable[[], Any], *, what: str, timeout_s: float = WAIT_S
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after a deadline."""
    try:
        async with asyncio.timeout(timeout_s):
            # The hub's service side has no change feed to wait on.
            while not (result := check()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"never happened: {what}")
    return result
