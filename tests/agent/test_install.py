"""Tests for agent/install.py, always against a temporary root."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

from agent.install import Options, install, main, uninstall

REPO = Path(__file__).resolve().parents[2]
INSTALL_SH = REPO / "systemd" / "install.sh"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="owners can be set by root only")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Give a staging root with a Raspberry Pi OS-like passwd and group."""
    etc = tmp_path / "root" / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000::/home/pi:/bin/bash\n"
    )
    (etc / "group").write_text("root:x:0:\ngpio:x:997:pi\npi:x:1000:\n")
    return etc.parent


def manifest(root: Path) -> dict[str, tuple[str, int, int, str]]:
    """Return path -> (mode, uid, gid, sha256 or link target) for the tree."""
    entries = {}
    for path in sorted(root.rglob("*")):
        seen = path.lstat()
        if stat.S_ISLNK(seen.st_mode):
            content = "-> " + os.readlink(path)
        elif stat.S_ISREG(seen.st_mode):
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = "dir"
        key = str(path.relative_to(root))
        entries[key] = (oct(seen.st_mode), seen.st_uid, seen.st_gid, content)
    return entries


def accounts(root: Path, name: str) -> dict[str, list[str]]:
    rows = (root / "etc" / name).read_text().splitlines()
    return {row.split(":")[0]: row.split(":") for row in rows}


def test_install_creates_accounts_files_and_link(root: Path) -> None:
    """Test that the user, groups, config, unit and enable link are made."""
    install(Options(root=root, venv=False), say=lambda _: None)

    users = accounts(root, "passwd")
    groups = accounts(root, "group")
    uid, gid = int(users["pitwin"][2]), int(users["pitwin"][3])
    assert users["pitwin"][5:] == ["/nonexistent", "/usr/sbin/nologin"]
    assert 100 <= uid < 1000
    assert int(groups["pitwin"][2]) == gid
    assert groups["gpio"] == ["gpio", "x", "997", "pi,pitwin"]
    assert groups["i2c"][3] == groups["spi"][3] == "pitwin"
    config = root / "etc/pitwin/pitwin.toml"
    assert config.read_bytes() == (REPO / "systemd/pitwin.example.toml").read_bytes()
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "etc/pitwin").stat().st_mode) == 0o750
    unit = root / "etc/systemd/system/pitwin.service"
    assert unit.read_bytes() == (REPO / "systemd/pitwin.service").read_bytes()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    link = root / "etc/systemd/system/multi-user.target.wants/pitwin.service"
    assert os.readlink(link) == "/etc/systemd/system/pitwin.service"


@as_root
def test_install_sets_owners(root: Path) -> None:
    """Test that config and its directory belong to root:pitwin."""
    install(Options(root=root, venv=False), say=lambda _: None)

    gid = int(accounts(root, "group")["pitwin"][2])
    for path in ("etc/pitwin", "etc/pitwin/pitwin.toml"):
        seen = (root / path).stat()
        assert (seen.st_uid, seen.st_gid) == (0, gid)
    seen = (root / "etc/systemd/system/pitwin.service").stat()
    assert (seen.st_uid, seen.st_gid) == (0, 0)


def test_second_run_changes_nothing(root: Path) -> None:
    """Test that installing again leaves every path, mode, owner and byte."""
    subprocess.run([INSTALL_SH, "--root", root, "--no-venv"], check=True)
    first = manifest(root)
    said: list[str] = []

    subprocess.run([INSTALL_SH, "install", "--root", root, "--no-venv"], check=True)
    install(Options(root=root, venv=False), say=said.append)

    assert manifest(root) == first
    assert said == ["edit /etc/pitwin/pitwin.toml, then: sudo systemctl restart pitwin"]


def test_existing_config_is_never_overwritten(root: Path) -> None:
    """Test that a config a person wrote survives a reinstall."""
    install(Options(root=root, venv=False), say=lambda _: None)
    config = root / "etc/pitwin/pitwin.toml"
    config.write_text('[device]\nid = "mine"\n')

    install(Options(root=root, venv=False), say=lambda _: None)

    assert config.read_text() == '[device]\nid = "mine"\n'


def test_uninstall_keeps_config_unless_purged(root: Path) -> None:
    """Test that uninstall removes unit and venv dir, and --purge the rest."""
    install(Options(root=root, venv=False), say=lambda _: None)
    (root / "var/lib/pitwin").mkdir(parents=True)

    uninstall(Options(root=root), say=lambda _: None)
    kept = manifest(root)
    assert main(["uninstall", "--root", str(root), "--purge"]) == 0

    assert "etc/systemd/system/pitwin.service" not in kept
    assert "etc/systemd/system/multi-user.target.wants/pitwin.service" not in kept
    assert "opt/pitwin" not in kept
    assert "etc/pitwin/pitwin.toml" in kept
    assert "var/lib/pitwin" in kept
    assert not (root / "etc/pitwin").exists()
    assert not (root / "var/lib/pitwin").exists()
    assert "pitwin" in accounts(root, "passwd")
