"""The dev hub's state in SQLite: registry, twins, sessions, telemetry.

Calls are synchronous and run on the event loop: each is a single indexed
statement on a local file in WAL mode (tens of microseconds), and running them
in order on the loop keeps twin versions and MQTT acknowledgements in the
order the packets arrived, without a lock.
"""

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devhub.errors import IdentityExists
from devhub.twins import ModuleTwin, TwinSection

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS identities (
    device_id TEXT NOT NULL, module_id TEXT NOT NULL,
    primary_key TEXT NOT NULL, secondary_key TEXT NOT NULL,
    status TEXT NOT NULL, generation_id TEXT NOT NULL, created TEXT NOT NULL,
    PRIMARY KEY (device_id, module_id));
CREATE TABLE IF NOT EXISTS twins (
    device_id TEXT NOT NULL, module_id TEXT NOT NULL, document TEXT NOT NULL,
    PRIMARY KEY (device_id, module_id));
CREATE TABLE IF NOT EXISTS sessions (client_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS subscriptions (
    client_id TEXT NOT NULL, topic_filter TEXT NOT NULL, qos INTEGER NOT NULL,
    PRIMARY KEY (client_id, topic_filter));
CREATE TABLE IF NOT EXISTS telemetry (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL, module_id TEXT NOT NULL, enqueued_time TEXT NOT NULL,
    body BLOB NOT NULL, system TEXT NOT NULL, properties TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS telemetry_identity ON telemetry (device_id, module_id, id);
"""


@dataclass(frozen=True, slots=True)
class Identity:
    """A device or module identity and its SAS keys.

    ``module_id`` is None for a device identity.
    """

    device_id: str
    module_id: str | None
    primary_key: str
    secondary_key: str


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """An identity with its registry bookkeeping."""

    identity: Identity
    status: str
    generation_id: str
    created: str


@dataclass(frozen=True, slots=True)
class TelemetryRecord:
    """One stored device-to-cloud message."""

    device_id: str
    module_id: str | None
    enqueued_time: str
    body: bytes
    system: dict[str, str | None]
    properties: dict[str, str | None]
    sequence_number: int = 0


class Store:
    """SQLite-backed state of one dev hub.

    Args:
        path: The database file; created if missing.
    """

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def get_meta(self, key: str) -> str | None:
        """Return a stored setting, or None."""
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting."""
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def add_identity(self, entry: RegistryEntry, twin: ModuleTwin) -> None:
        """Register an identity with its initial twin.

        Raises:
            IdentityExists: The identity is already registered.
        """
        ident = entry.identity
        row = (
            ident.device_id,
            ident.module_id or "",
            ident.primary_key,
            ident.secondary_key,
            entry.status,
            entry.generation_id,
            entry.created,
        )
        with self._transaction():
            try:
                self._db.execute("INSERT INTO identities VALUES (?,?,?,?,?,?,?)", row)
            except sqlite3.IntegrityError:
                raise IdentityExists(
                    _describe(ident.device_id, ident.module_id)
                ) from None
            self.save_twin(ident.device_id, ident.module_id, twin)

    def update_identity(self, entry: RegistryEntry) -> None:
        """Store new keys and status of a registered identity."""
        ident = entry.identity
        self._db.execute(
            "UPDATE identities SET primary_key=?, secondary_key=?, status=?"
            " WHERE device_id=? AND module_id=?",
            (
                ident.primary_key,
                ident.secondary_key,
                entry.status,
                ident.device_id,
                ident.module_id or "",
            ),
        )

    def get_identity(
        self, device_id: str, module_id: str | None
    ) -> RegistryEntry | None:
        """Return the registry entry of an identity, or None."""
        row = self._db.execute(
            "SELECT * FROM identities WHERE device_id=? AND module_id=?",
            (device_id, module_id or ""),
        ).fetchone()
        return None if row is None else _entry(row)

    def list_identities(self, device_id: str | None = None) -> list[RegistryEntry]:
        """Return devices (``device_id`` None) or the modules of one device."""
        if device_id is None:
            query, args = "module_id='' ORDER BY device_id", tuple[str, ...]()
        else:
            query, args = (
                "device_id=? AND module_id!='' ORDER BY module_id",
                (device_id,),
            )
        rows = self._db.execute(f"SELECT * FROM identities WHERE {query}", args)
        return [_entry(row) for row in rows]

    def delete_identity(self, device_id: str, module_id: str | None) -> None:
        """Delete an identity; a device takes its modules and data along."""
        where = "device_id=?" if module_id is None else "device_id=? AND module_id=?"
        args = (device_id,) if module_id is None else (device_id, module_id)
        with self._transaction():
            for table in ("identities", "twins", "telemetry"):
                self._db.execute(f"DELETE FROM {table} WHERE {where}", args)

    def load_twin(self, device_id: str, module_id: str | None) -> ModuleTwin | None:
        """Return a stored twin, or None."""
        row = self._db.execute(
            "SELECT document FROM twins WHERE device_id=? AND module_id=?",
            (device_id, module_id or ""),
        ).fetchone()
        return None if row is None else _twin_from_json(row[0])

    def save_twin(
        self, device_id: str, module_id: str | None, twin: ModuleTwin
    ) -> None:
        """Store a twin, replacing the previous one."""
        self._db.execute(
            "INSERT OR REPLACE INTO twins VALUES (?, ?, ?)",
            (device_id, module_id or "", _twin_to_json(twin)),
        )

    def open_session(self, client_id: str, *, clean: bool) -> bool:
        """Start a client's session; return True if a stored one was resumed."""
        with self._transaction():
            if clean:
                self._db.execute("DELETE FROM sessions WHERE client_id=?", (client_id,))
                self._db.execute(
                    "DELETE FROM subscriptions WHERE client_id=?", (client_id,)
                )
                return False
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO sessions VALUES (?)", (client_id,)
            )
            return cursor.rowcount == 0

    def subscriptions(self, client_id: str) -> dict[str, int]:
        """Return a client's topic filters and their granted QoS."""
        rows = self._db.execute(
            "SELECT topic_filter, qos FROM subscriptions WHERE client_id=?",
            (client_id,),
        )
        return {str(name): int(qos) for name, qos in rows}

    def set_subscription(self, client_id: str, topic_filter: str, qos: int) -> None:
        """Add or replace one subscription."""
        self._db.execute(
            "INSERT OR REPLACE INTO subscriptions VALUES (?, ?, ?)",
            (client_id, topic_filter, qos),
        )

    def remove_subscription(self, client_id: str, topic_filter: str) -> None:
        """Remove one subscription, if present."""
        self._db.execute(
            "DELETE FROM subscriptions WHERE client_id=? AND topic_filter=?",
            (client_id, topic_filter),
        )

    def add_telemetry(self, record: TelemetryRecord, *, keep: int) -> None:
        """Store a message, then drop the oldest beyond the newest ``keep``."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO telemetry (device_id, module_id, enqueued_time, body,"
                " system, properties) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.device_id,
                    record.module_id or "",
                    record.enqueued_time,
                    record.body,
                    json.dumps(record.system),
                    json.dumps(record.properties),
                ),
            )
            self._db.execute(
                "DELETE FROM telemetry WHERE id <= "
                "(SELECT id FROM telemetry ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (keep,),
            )

    def telemetry(
        self, device_id: str, module_id: str | None, *, limit: int, after: int = 0
    ) -> list[TelemetryRecord]:
        """Return an identity's newest ``limit`` messages, oldest first.

        Only messages whose sequence number is above ``after`` count.
        """
        rows = self._db.execute(
            "SELECT device_id, module_id, enqueued_time, body, system, properties,"
            " id FROM telemetry WHERE device_id=? AND module_id=? AND id>?"
            " ORDER BY id DESC LIMIT ?",
            (device_id, module_id or "", after, limit),
        ).fetchall()
        return [_telemetry(row) for row in reversed(rows)]

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _describe(device_id: str, module_id: str | None) -> str:
    if module_id is None:
        return f"device {device_id!r} already exists; pick another id or delete it"
    return (
        f"module {module_id!r} already exists on device {device_id!r}; "
        "pick another id or delete it"
    )


def _entry(row: tuple[str, ...]) -> RegistryEntry:
    device_id, module_id, primary, secondary, status, generation, created = row
    identity = Identity(device_id, module_id or None, primary, secondary)
    return RegistryEntry(identity, status, generation, created)


def _telemetry(
    row: tuple[str, str, str, bytes, str, str, int],
) -> TelemetryRecord:
    device_id, module_id, enqueued, body, system, properties, number = row
    return TelemetryRecord(
        device_id=device_id,
        module_id=module_id or None,
        enqueued_time=enqueued,
        body=bytes(body),
        system=json.loads(system),
        properties=json.loads(properties),
        sequence_number=number,
    )


def _twin_to_json(twin: ModuleTwin) -> str:
    sections = {
        name: [section.properties, section.metadata, section.version]
        for name, section in (("desired", twin.desired), ("reported", twin.reported))
    }
    return json.dumps(
        {"tags": twin.tags, "version": twin.version, "etag_seq": twin.etag_seq}
        | sections
    )


def _twin_from_json(text: str) -> ModuleTwin:
    stored = json.loads(text)
    return ModuleTwin(
        tags=stored["tags"],
        desired=TwinSection(*stored["desired"]),
        reported=TwinSection(*stored["reported"]),
        version=stored["version"],
        etag_seq=stored["etag_seq"],
    )
