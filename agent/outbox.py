"""The telemetry outbox: readings on disk until the hub acknowledges them.

One SQLite database in WAL mode for all modules of the agent. Durability is
split on purpose, to spare the SD card:

* every reading is committed at once with ``synchronous=NORMAL``: the commit
  reaches the operating system (the WAL file in the page cache) before the
  call returns, so a killed process (SIGKILL, OOM) loses at most a reading
  still being taken;
* the WAL is forced to the card (fsync) every ``commit_interval_s`` by
  :meth:`Outbox.sync`, so a power cut loses at most the readings of the last
  interval.

Readings of one module are packed into JSON messages that fit IoT Hub's 4 KB
metering unit. A pack, once formed, is recorded with its sequence range and
message id and resent unchanged until acknowledged, so a repeat always
carries the same ``message_id``. Rows are deleted only after the hub
acknowledged the message that carried them.

The methods block on disk I/O: call them with :func:`asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import StorageError

_LOGGER = logging.getLogger(__name__)

# IoT Hub meters device-to-cloud traffic in 4 KB units (reference section 9.2);
# the allowance keeps the body, system and application properties in one.
METER_BYTES = 4096
PROPERTY_ALLOWANCE_BYTES = 320
PACK_BODY_BYTES = METER_BYTES - PROPERTY_ALLOWANCE_BYTES

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    module TEXT NOT NULL,
    seq INTEGER NOT NULL,
    taken_at REAL NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (module, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS modules (
    module TEXT PRIMARY KEY,
    next_seq INTEGER NOT NULL,
    dropped INTEGER NOT NULL DEFAULT 0,
    last_sent REAL,
    inflight_first INTEGER,
    inflight_last INTEGER,
    inflight_id TEXT
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Pack:
    """Readings of one module packed into one message.

    Attributes:
        module_id: The module whose readings these are.
        first_seq: Sequence number of the first reading.
        last_seq: Sequence number of the last reading.
        count: How many readings the pack holds.
        message_id: Stable id of this pack: the same on every resend.
        body: The JSON message body.
    """

    module_id: str
    first_seq: int
    last_seq: int
    count: int
    message_id: str
    body: str


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What a module's outbox holds, for reported properties.

    Attributes:
        depth: Readings waiting.
        oldest_age_s: Age of the oldest waiting reading, if any.
        dropped: Readings dropped by the bounds since the outbox was created.
        last_sent: Unix time of the last acknowledged message, if any.
    """

    depth: int
    oldest_age_s: float | None
    dropped: int
    last_sent: float | None


class Outbox:
    """Readings waiting for the hub, for every module of one device.

    Args:
        path: The database file; created (with its directory) if missing.
        device_id: Part of every message id.
        max_rows: Readings kept per module; the oldest go first past it.
        max_age_s: Readings older than this are dropped.
        now: Unix time source (injectable for tests).
    """

    def __init__(
        self,
        path: Path,
        *,
        device_id: str,
        max_rows: int,
        max_age_s: float,
        now: Callable[[], float] = time.time,
    ) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._path = path
        self._device_id = device_id
        self._max_rows = max_rows
        self._max_age_s = max_age_s
        self._now = now
        self._lock = threading.Lock()
        self._dirty = False
        # Part of every new message id. A power cut can roll the sequence
        # numbers back to the last sync, and readings taken after it would
        # then reuse numbers the hub has already seen; a new epoch per start
        # keeps their ids apart.
        self._epoch = secrets.token_hex(3)
        try:
            self._db = _open_checked(path)
        except sqlite3.OperationalError as err:
            raise _storage_error(path, err) from err
        except sqlite3.DatabaseError as err:
            # A damaged file (a card that lost a write) must not stop the
            # agent: keep it aside for forensics and start a new one.
            aside = _set_aside(path)
            _LOGGER.warning(
                "outbox unreadable, set aside with its unsent readings path=%s "
                "error=%s",
                aside,
                err,
            )
            self._db = _open_checked(path)

    def close(self) -> None:
        """Force what is written to disk and close the database."""
        with self._guard():
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

    def append(
        self, module_id: str, reading: Mapping[str, Any], *, taken_at: float
    ) -> int:
        """Store one reading; return its sequence number.

        Args:
            module_id: The module that took it.
            reading: Its JSON-ready fields (``seq`` is added here).
            taken_at: Unix time it was taken (for the age bound).
        """
        with self._guard(), self._transaction():
            seq = self._next_seq(module_id)
            body = json.dumps({"seq": seq, **reading}, separators=(",", ":"))
            self._db.execute(
                "INSERT INTO readings VALUES (?, ?, ?, ?)",
                (module_id, seq, taken_at, body),
            )
            self._enforce_bounds(module_id)
            self._dirty = True
        return seq

    def sync(self) -> bool:
        """Force committed changes onto the storage device.

        Returns:
            Whether there was anything to force (an idle outbox costs no
            writes).
        """
        with self._guard():
            if not self._dirty:
                return False
            for suffix in ("-wal", ""):
                _fsync_file(Path(f"{self._path}{suffix}"))
            self._dirty = False
        return True

    def next_pack(self, module_id: str, *, max_latency_s: float) -> Pack | None:
        """Return the pack to send next, or ``None`` if nothing is due.

        A pack already sent but not acknowledged comes back unchanged. A new
        pack is formed when its readings fill a message or the oldest has
        waited ``max_latency_s``.
        """
        with self._guard(), self._transaction():
            inflight = self._db.execute(
                "SELECT inflight_first, inflight_last, inflight_id FROM modules "
                "WHERE module = ?",
                (module_id,),
            ).fetchone()
            if inflight is not None and inflight[0] is not None:
                pack = self._build(module_id, *inflight)
                if pack is not None:
                    return pack
            return self._form(module_id, max_latency_s)

    def due_in_s(self, module_id: str, *, max_latency_s: float) -> float | None:
        """Seconds until the oldest waiting reading is due; ``None`` if none."""
        with self._guard():
            row = self._db.execute(
                "SELECT MIN(taken_at) FROM readings WHERE module = ?", (module_id,)
            ).fetchone()
        oldest: float | None = row[0]
        if oldest is None:
            return None
        return max(0.0, oldest + max_latency_s - self._now())

    def acked(self, pack: Pack) -> None:
        """Delete the readings of an acknowledged pack."""
        with self._guard(), self._transaction():
            self._db.execute(
                "DELETE FROM readings WHERE module = ? AND seq BETWEEN ? AND ?",
                (pack.module_id, pack.first_seq, pack.last_seq),
            )
            self._db.execute(
                "UPDATE modules SET inflight_first = NULL, inflight_last = NULL, "
                "inflight_id = NULL, last_sent = ? WHERE module = ?",
                (self._now(), pack.module_id),
            )
            self._dirty = True

    def stats(self, module_id: str) -> OutboxStats:
        """Return what the outbox holds for a module."""
        with self._guard():
            depth, oldest = self._db.execute(
                "SELECT COUNT(*), MIN(taken_at) FROM readings WHERE module = ?",
                (module_id,),
            ).fetchone()
            row = self._db.execute(
                "SELECT dropped, last_sent FROM modules WHERE module = ?", (module_id,)
            ).fetchone()
        dropped, last_sent = row if row is not None else (0, None)
        age = None if oldest is None else max(0.0, self._now() - oldest)
        return OutboxStats(depth, age, dropped, last_sent)

    def _next_seq(self, module_id: str) -> int:
        row = self._db.execute(
            "SELECT next_seq FROM modules WHERE module = ?", (module_id,)
        ).fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO modules (module, next_seq) VALUES (?, 2)", (module_id,)
            )
            return 1
        self._db.execute(
            "UPDATE modules SET next_seq = next_seq + 1 WHERE module = ?", (module_id,)
        )
        seq: int = row[0]
        return seq

    def _enforce_bounds(self, module_id: str) -> None:
        # Rows of a pack in flight stay: it may have reached the hub, and
        # its resend must carry the same readings under the same id.
        spared = (
            "AND seq NOT BETWEEN"
            " (SELECT COALESCE(inflight_first, 0) FROM modules WHERE module = ?)"
            " AND (SELECT COALESCE(inflight_last, -1) FROM modules WHERE module = ?)"
        )
        cutoff = self._now() - self._max_age_s
        old = self._db.execute(
            f"DELETE FROM readings WHERE module = ? AND taken_at < ? {spared}",
            (module_id, cutoff, module_id, module_id),
        ).rowcount
        over = self._db.execute(
            "DELETE FROM readings WHERE module = ? AND seq <= ("
            " SELECT seq FROM readings WHERE module = ? ORDER BY seq DESC"
            f" LIMIT 1 OFFSET ?) {spared}",
            (module_id, module_id, self._max_rows, module_id, module_id),
        ).rowcount
        if old or over:
            self._db.execute(
                "UPDATE modules SET dropped = dropped + ? WHERE module = ?",
                (old + over, module_id),
            )

    def _form(self, module_id: str, max_latency_s: float) -> Pack | None:
        rows = self._db.execute(
            "SELECT seq, taken_at, body FROM readings WHERE module = ? "
            "ORDER BY seq LIMIT 200",
            (module_id,),
        ).fetchall()
        if not rows:
            return None
        chosen = _fit(module_id, rows)
        full = len(chosen) < len(rows)
        if not full and rows[0][1] + max_latency_s > self._now():
            return None
        first, last = chosen[0][0], chosen[-1][0]
        message_id = f"{self._device_id}:{module_id}:{self._epoch}:{first}-{last}"
        self._db.execute(
            "UPDATE modules SET inflight_first = ?, inflight_last = ?, inflight_id = ? "
            "WHERE module = ?",
            (first, last, message_id, module_id),
        )
        self._dirty = True
        return self._pack(module_id, first, last, message_id, [b for _, _, b in chosen])

    def _build(
        self, module_id: str, first: int, last: int, message_id: str
    ) -> Pack | None:
        rows = self._db.execute(
            "SELECT body FROM readings WHERE module = ? AND seq BETWEEN ? AND ? "
            "ORDER BY seq",
            (module_id, first, last),
        ).fetchall()
        if not rows:
            return None
        return self._pack(module_id, first, last, message_id, [b for (b,) in rows])

    def _pack(
        self, module_id: str, first: int, last: int, message_id: str, bodies: list[str]
    ) -> Pack:
        body = _envelope(module_id, first, last) + ",".join(bodies) + "]}"
        return Pack(module_id, first, last, len(bodies), message_id, body)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Serialise access, and turn disk trouble into :class:`StorageError`."""
        with self._lock:
            try:
                yield
            except (sqlite3.Error, OSError) as err:
                raise _storage_error(self._path, err) from err

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not exc_type:
            self._db.execute("COMMIT")
        elif self._db.in_transaction:
            # SQLite may have rolled back already (a full disk does), and a
            # second ROLLBACK would hide the first error.
            self._db.execute("ROLLBACK")


def _open_checked(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        # Small pages make small WAL frames: a reading dirties about 1 KB of
        # log instead of 4 KB (only takes effect when the file is created).
        db.execute("PRAGMA page_size=1024")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        verdict = db.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise sqlite3.DatabaseError(verdict)
        db.executescript(_SCHEMA)
    except BaseException:
        db.close()
        raise
    return db


def _set_aside(path: Path) -> Path:
    aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
    path.replace(aside)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return aside


def _storage_error(path: Path, err: Exception) -> StorageError:
    return StorageError(
        f"outbox {path}: {err}; free space on that disk or check the state_dir"
    )


def _envelope(module_id: str, first: int, last: int) -> str:
    head = json.dumps({"module": module_id, "first_seq": first, "last_seq": last})
    return head[:-1] + ',"readings":['


def _fit(module_id: str, rows: list[Any]) -> list[Any]:
    budget = PACK_BODY_BYTES - len(_envelope(module_id, rows[0][0], rows[-1][0])) - 2
    chosen: list[Any] = []
    for row in rows:
        cost = len(row[2]) + 1
        if chosen and cost > budget:
            break
        budget -= cost
        chosen.append(row)
    return chosen


def _fsync_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
