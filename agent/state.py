"""Per-module state on disk: applied desired version, accepted values, unsent reports.

One small JSON file per module, replaced atomically (write, fsync, rename,
fsync the directory), so a power cut leaves either the old or the new file,
never a torn one.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.properties import Value
from agent.twinsync import TwinState

_LOGGER = logging.getLogger(__name__)

_FORMAT = 1
LOCK_FILE = "agent.lock"


@dataclass(slots=True)
class ModuleState:
    """Everything one module keeps across restarts.

    Attributes:
        twin: Applied desired version and accepted values.
        pending_reported: Reported properties not yet acknowledged by the hub.
        history: The last desired versions applied, oldest first, each with
            how it came (``patch`` or ``resync``).
        reported: What the module's reported properties should say.
        reported_floor: The lowest reported ``$version`` the twin can have:
            the last one fetched plus the patches accepted since. A fetched
            twin below it was recreated.
    """

    twin: TwinState = field(default_factory=TwinState)
    pending_reported: dict[str, Any] = field(default_factory=dict)
    history: list[tuple[int, str]] = field(default_factory=list)
    reported: dict[str, Any] = field(default_factory=dict)
    reported_floor: int = 0


class StateStore:
    """Reads and writes module state files in one directory.

    The calls block on disk I/O: run them with :func:`asyncio.to_thread`.

    Args:
        directory: Where the files live; created (mode 0700) if missing.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._lock_fd: int | None = None

    def claim(self) -> None:
        """Make the directory if needed and hold it for this process only.

        Two agents on one state directory would fight over the module
        identities and number readings twice; the lock (``flock``) goes
        when the process ends, however it ends.

        Raises:
            ConfigError: The directory cannot be used, or another agent
                holds it.
        """
        path = self._directory / LOCK_FILE
        try:
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise ConfigError(
                f"state_dir {self._directory} is not usable ({err.strerror}); "
                "set [device] state_dir to a directory this user can write"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise ConfigError(
                f"another agent (pid {holder}) is using state_dir "
                f"{self._directory}; stop it first (systemctl stop pitwin)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._lock_fd = fd

    def release(self) -> None:
        """Let another agent use the directory."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def path_for(self, module_id: str) -> Path:
        """Return the state file of a module."""
        return self._directory / f"{module_id}.state.json"

    def load(self, module_id: str) -> ModuleState:
        """Return the saved state of a module, or a fresh one.

        A file that cannot be parsed is set aside (renamed ``.corrupt``) and
        the module starts fresh: it then resyncs from the twin, which holds
        the truth.
        """
        path = self.path_for(module_id)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ModuleState()
        except OSError as err:
            raise ConfigError(
                f"cannot read state file {path}: {err.strerror}; "
                "check the state_dir permissions"
            ) from err
        try:
            return _decode(json.loads(raw))
        except (ValueError, TypeError, KeyError) as err:
            aside = path.with_suffix(".corrupt")
            path.replace(aside)
            _LOGGER.warning(
                "state file unreadable, starting fresh module=%s path=%s error=%s",
                module_id,
                aside,
                err,
            )
            return ModuleState()

    def save(self, module_id: str, state: ModuleState) -> None:
        """Replace the state file of a module atomically and durably."""
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.path_for(module_id)
        tmp = path.with_name(path.name + ".tmp")
        body = json.dumps(_encode(state), sort_keys=True, separators=(",", ":"))
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_directory(self._directory)


def _encode(state: ModuleState) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "applied_version": state.twin.applied_version,
        "accepted": state.twin.accepted,
        "desired": state.twin.desired,
        "pending_reported": state.pending_reported,
        "history": state.history,
        "reported": state.reported,
        "reported_floor": state.reported_floor,
    }


def _decode(raw: dict[str, Any]) -> ModuleState:
    if raw.get("format") != _FORMAT:
        raise ValueError(f"unknown state format {raw.get('format')!r}")
    version = raw["applied_version"]
    accepted: dict[str, Value] = dict(raw["accepted"])
    if not isinstance(version, int) or version < 0:
        raise ValueError(f"bad applied_version {version!r}")
    history = [(int(v), str(source)) for v, source in raw.get("history", [])]
    return ModuleState(
        TwinState(version, accepted, _optional_dict(raw.get("desired"))),
        dict(raw["pending_reported"]),
        history,
        dict(raw.get("reported", {})),
        int(raw.get("reported_floor", 0)),
    )


def _optional_dict(value: object) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise ValueError(f"bad desired members {value!r}")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
