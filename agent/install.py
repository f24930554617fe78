"""Install pitwin as a systemd service on a Pi, or remove it.

Run from a checkout, as ``sudo systemd/install.sh`` (which calls
``python3 -m agent.install install``). Every step checks before it acts, so a
second run changes nothing. With ``--root DIR`` (or ``$DESTDIR``) the work is
done inside ``DIR`` instead of ``/``: accounts are written into its
``etc/passwd`` and ``etc/group``, the unit is enabled by its symlink, and no
``useradd`` or ``systemctl`` runs, so tests and image builders can use it.

What it sets up:

* system group and user ``pitwin`` (no login, no home), a member of
  ``gpio``, ``i2c`` and ``spi`` (created as system groups when missing);
* ``/opt/pitwin/venv``: a venv with ``--system-site-packages``, so the
  distribution's GPIO libraries (``python3-lgpio`` on a Pi 5) are used, and
  pitwin with its ``pi`` extra installed into it, owned by root;
* ``/etc/pitwin/pitwin.toml``: the example config, 0640 root:pitwin, written
  only when absent;
* ``/etc/systemd/system/pitwin.service``, enabled, and started unless the
  config is still the untouched example.
"""

from __future__ import annotations

import argparse
import dataclasses
import grp
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

SERVICE_USER = "pitwin"
DEVICE_GROUPS = ("gpio", "i2c", "spi")
UNIT_NAME = "pitwin.service"
CONFIG_PATH = "etc/pitwin/pitwin.toml"
CONFIG_DIR = "etc/pitwin"
UNIT_PATH = "etc/systemd/system/pitwin.service"
WANTS_LINK = "etc/systemd/system/multi-user.target.wants/pitwin.service"
APP_DIR = "opt/pitwin"
VENV_DIR = "opt/pitwin/venv"
STATE_DIR = "var/lib/pitwin"
NOLOGIN = "/usr/sbin/nologin"
# Debian's SYS_UID_MIN/SYS_UID_MAX; like useradd --system, ids are taken
# from the top of the range down.
SYSTEM_ID_MIN = 100
SYSTEM_ID_MAX = 999

_CHECKOUT = Path(__file__).resolve().parents[1]
_SHIPPED = _CHECKOUT / "systemd"


class InstallError(Exception):
    """A step could not be done; the message says what to do."""


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """What :func:`install` and :func:`uninstall` act on.

    Attributes:
        root: The filesystem root; ``/`` for the running system.
        source: What pip installs: a wheel, an sdist or a checkout.
        python: Interpreter the venv is made from.
        venv: Whether to make the venv and install pitwin into it.
        upgrade: Install pitwin again even if the venv has it.
        pip_options: Extra arguments for ``pip install``.
        purge: On uninstall, also remove config and state.
    """

    root: Path
    source: str = str(_CHECKOUT)
    python: str = "/usr/bin/python3"
    venv: bool = True
    upgrade: bool = False
    pip_options: tuple[str, ...] = ()
    purge: bool = False

    @property
    def live(self) -> bool:
        """Whether the running system is the target."""
        return self.root.resolve() == Path("/")


Say = Callable[[str], None]


def install(options: Options, *, say: Say = print) -> None:
    """Set up user, venv, config and unit; start the service if configured.

    Raises:
        InstallError: A step failed; the message names it and the fix.
    """
    _check_privileges(options)
    _, gid = _ensure_accounts(options, say)
    root = options.root
    _ensure_dir(root / APP_DIR, 0o755, 0, 0, say)
    if options.venv:
        _ensure_venv(options, say)
    _ensure_dir(root / CONFIG_DIR, 0o750, 0, gid, say)
    example = (_SHIPPED / "pitwin.example.toml").read_bytes()
    _ensure_file(root / CONFIG_PATH, example, 0o640, 0, gid, say, replace=False)
    unit = (_SHIPPED / UNIT_NAME).read_bytes()
    _ensure_dir(root / UNIT_PATH.rsplit("/", 1)[0], 0o755, 0, 0, say)
    unit_changed = _ensure_file(root / UNIT_PATH, unit, 0o644, 0, 0, say)
    configured = (root / CONFIG_PATH).read_bytes() != example
    _enable(options, say, restart=unit_changed, start=configured)
    if not configured:
        say(f"edit /{CONFIG_PATH}, then: sudo systemctl restart pitwin")


def uninstall(options: Options, *, say: Say = print) -> None:
    """Stop and remove the service; keep config and state unless purging.

    The ``pitwin`` user and group stay: files it owned may outlive it.

    Raises:
        InstallError: A step failed; the message names it and the fix.
    """
    _check_privileges(options)
    root = options.root
    if options.live:
        _run(["systemctl", "disable", "--now", UNIT_NAME], check=False)
    for path in (root / WANTS_LINK, root / UNIT_PATH):
        if path.is_symlink() or path.exists():
            path.unlink()
            say(f"removed /{path.relative_to(root)}")
    if options.live:
        _run(["systemctl", "daemon-reload"])
    doomed = [APP_DIR] + ([CONFIG_DIR, STATE_DIR] if options.purge else [])
    for relative in doomed:
        if (root / relative).exists():
            shutil.rmtree(root / relative)
            say(f"removed /{relative}")
    if not options.purge:
        say(f"kept /{CONFIG_DIR} and /{STATE_DIR} (--purge removes them)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``install`` or ``uninstall``; return the exit status."""
    args = _parser().parse_args(argv)
    options = Options(
        root=Path(args.root or os.environ.get("DESTDIR") or "/"),
        source=getattr(args, "source", None) or str(_CHECKOUT),
        python=getattr(args, "python", None) or "/usr/bin/python3",
        venv=not getattr(args, "no_venv", False),
        upgrade=getattr(args, "upgrade", False),
        pip_options=tuple(getattr(args, "pip_option", None) or ()),
        purge=getattr(args, "purge", False),
    )
    try:
        (install if args.command == "install" else uninstall)(options)
    except InstallError as err:
        print(f"install.sh: error: {err}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="install.sh", description="Install pitwin as a systemd service."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("install", "uninstall"):
        command = commands.add_parser(name)
        command.add_argument(
            "--root", help="install into this directory instead of / ($DESTDIR)"
        )
    add = commands.choices["install"].add_argument
    add("--source", help="wheel, sdist or checkout to install (default: this one)")
    add("--python", help="interpreter for the venv (default /usr/bin/python3)")
    add("--no-venv", action="store_true", help="leave /opt/pitwin/venv alone")
    add("--upgrade", action="store_true", help="reinstall pitwin into the venv")
    add("--pip-option", action="append", help="extra pip argument (repeatable)")
    commands.choices["uninstall"].add_argument(
        "--purge", action="store_true", help="also remove /etc/pitwin and state"
    )
    return parser


# -- accounts -----------------------------------------------------------------


def _check_privileges(options: Options) -> None:
    if options.live and os.geteuid() != 0:
        raise InstallError("the live system needs root; run: sudo systemd/install.sh")


def _ensure_accounts(options: Options, say: Say) -> tuple[int, int]:
    if options.live:
        return _ensure_accounts_live(say)
    etc = options.root / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    groups = _Table(etc / "group", etc / "gshadow")
    users = _Table(etc / "passwd", etc / "shadow")
    taken = groups.ids() | users.ids()
    for name in DEVICE_GROUPS:
        if groups.find(name) is None:
            new_id = _free_id(taken)
            taken.add(new_id)
            groups.add([name, "x", str(new_id), ""], [name, "!", "", ""])
            say(f"created group {name} gid={new_id}")
    gid = groups.id_of(SERVICE_USER)
    if gid is None:
        gid = _free_id(taken)
        taken.add(gid)
        groups.add([SERVICE_USER, "x", str(gid), ""], [SERVICE_USER, "!", "", ""])
        say(f"created group {SERVICE_USER} gid={gid}")
    uid = users.id_of(SERVICE_USER)
    if uid is None:
        uid = gid if gid not in users.ids() else _free_id(taken)
        fields = [SERVICE_USER, "x", str(uid), str(gid), "pitwin agent"]
        users.add([*fields, "/nonexistent", NOLOGIN], [SERVICE_USER, "!*"] + [""] * 7)
        say(f"created user {SERVICE_USER} uid={uid}")
    for name in DEVICE_GROUPS:
        if groups.add_member(name, SERVICE_USER):
            say(f"added {SERVICE_USER} to group {name}")
    groups.save()
    users.save()
    return uid, gid


def _ensure_accounts_live(say: Say) -> tuple[int, int]:
    for name in (*DEVICE_GROUPS, SERVICE_USER):
        if not _exists(grp.getgrnam, name):
            _run(["groupadd", "--system", name])
            say(f"created group {name}")
    if not _exists(pwd.getpwnam, SERVICE_USER):
        _run(
            [
                "useradd",
                "--system",
                "--gid",
                SERVICE_USER,
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                NOLOGIN,
                "--comment",
                "pitwin agent",
                SERVICE_USER,
            ]
        )
        say(f"created user {SERVICE_USER}")
    for name in DEVICE_GROUPS:
        if SERVICE_USER not in grp.getgrnam(name).gr_mem:
            _run(["usermod", "--append", "--groups", name, SERVICE_USER])
            say(f"added {SERVICE_USER} to group {name}")
    user = pwd.getpwnam(SERVICE_USER)
    return user.pw_uid, grp.getgrnam(SERVICE_USER).gr_gid


def _exists(lookup: Callable[[str], object], name: str) -> bool:
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def _free_id(taken: set[int]) -> int:
    for candidate in range(SYSTEM_ID_MAX, SYSTEM_ID_MIN - 1, -1):
        if candidate not in taken:
            return candidate
    raise InstallError(
        f"no free system id between {SYSTEM_ID_MIN} and {SYSTEM_ID_MAX}; "
        "remove an unused system account"
    )


class _Table:
    """A colon-separated account file and its shadow, edited in memory."""

    def __init__(self, path: Path, shadow: Path) -> None:
        self._path = path
        self._shadow = shadow
        self._rows = _read_rows(path)
        self._shadow_rows = _read_rows(shadow) if shadow.exists() else None
        self._dirty = False

    def ids(self) -> set[int]:
        return {int(row[2]) for row in self._rows if row[2].isdigit()}

    def find(self, name: str) -> list[str] | None:
        return next((row for row in self._rows if row[0] == name), None)

    def id_of(self, name: str) -> int | None:
        row = self.find(name)
        return int(row[2]) if row else None

    def add(self, row: list[str], shadow_row: list[str]) -> None:
        self._rows.append(row)
        if self._shadow_rows is not None:
            self._shadow_rows.append(shadow_row)
        self._dirty = True

    def add_member(self, group: str, user: str) -> bool:
        row = self.find(group)
        assert row is not None
        members = [m for m in row[3].split(",") if m]
        if user in members:
            return False
        row[3] = ",".join([*members, user])
        for shadow_row in self._shadow_rows or []:
            if shadow_row[0] == group:
                shadow_row[3] = ",".join(
                    [m for m in shadow_row[3].split(",") if m] + [user]
                )
        self._dirty = True
        return True

    def save(self) -> None:
        if not self._dirty:
            return
        _write_rows(self._path, self._rows, 0o644)
        if self._shadow_rows is not None:
            _write_rows(self._shadow, self._shadow_rows, 0o640)
        self._dirty = False


def _read_rows(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split(":") for line in lines if line.strip()]


def _write_rows(path: Path, rows: list[list[str]], mode: int) -> None:
    mode = path.stat().st_mode & 0o7777 if path.exists() else mode
    temporary = path.with_name(path.name + "+")
    temporary.write_text("".join(":".join(row) + "\n" for row in rows), "utf-8")
    temporary.chmod(mode)
    temporary.replace(path)


# -- files ----------------------------------------------------------------------


def _ensure_dir(path: Path, mode: int, uid: int, gid: int, say: Say) -> None:
    if not path.is_dir():
        path.mkdir(parents=True)
        say(f"created {path}/")
    _set_owner_mode(path, mode, uid, gid, say)


def _ensure_file(
    path: Path,
    content: bytes,
    mode: int,
    uid: int,
    gid: int,
    say: Say,
    *,
    replace: bool = True,
) -> bool:
    """Write ``content`` unless it is there already; return whether it changed."""
    changed = False
    if not path.exists() or (replace and path.read_bytes() != content):
        verb = "updated" if path.exists() else "created"
        temporary = path.with_name(path.name + ".new")
        # Created private, so the config's keys are never readable by others,
        # not even for the moment before the final mode is set.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        temporary.replace(path)
        say(f"{verb} {path}")
        changed = True
    _set_owner_mode(path, mode, uid, gid, say)
    return changed


def _set_owner_mode(path: Path, mode: int, uid: int, gid: int, say: Say) -> None:
    seen = path.stat()
    if (seen.st_uid, seen.st_gid) != (uid, gid):
        try:
            os.chown(path, uid, gid)
        except PermissionError:
            if os.geteuid() == 0:
                raise
            # Building into a staging root as a normal user: owners are
            # set when the image is unpacked, modes still apply.
            say(f"cannot chown {path} to {uid}:{gid} (not root); left as is")
    if seen.st_mode & 0o7777 != mode:
        path.chmod(mode)


# -- venv and service ---------------------------------------------------------


def _ensure_venv(options: Options, say: Say) -> None:
    venv = options.root / VENV_DIR
    python = venv / "bin" / "python"
    if not python.exists():
        _run([options.python, "-m", "venv", "--system-site-packages", str(venv)])
        say(f"created venv {venv}")
    if options.upgrade or not (venv / "bin" / "pitwin").exists():
        requirement = f"{options.source}[pi]"
        _run(
            [
                str(python),
                *("-m", "pip", "install", "--upgrade", "--quiet"),
                *options.pip_options,
                requirement,
            ]
        )
        say(f"installed {requirement} into {venv}")


def _enable(options: Options, say: Say, *, restart: bool, start: bool) -> None:
    if not options.live:
        # What "systemctl enable" does for WantedBy=multi-user.target.
        link = options.root / WANTS_LINK
        link.parent.mkdir(parents=True, exist_ok=True)
        target = f"/{UNIT_PATH}"
        if not link.is_symlink() or os.readlink(link) != target:
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target)
            say(f"enabled {UNIT_NAME} (not started: not the live system)")
        return
    _run(["systemctl", "daemon-reload"])
    _run(["systemctl", "enable", "--quiet", UNIT_NAME])
    if start:
        action = "restart" if restart or options.upgrade else "start"
        _run(["systemctl", action, UNIT_NAME])
        say(f"{action}ed {UNIT_NAME}; see: journalctl -u pitwin -f")


def _run(command: list[str], *, check: bool = True) -> None:
    try:
        subprocess.run(command, check=check)
    except (OSError, subprocess.CalledProcessError) as err:
        raise InstallError(f"{' '.join(command)} failed: {err}") from err


if __name__ == "__main__":
    sys.exit(main())
