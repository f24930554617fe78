"""What the outbox costs at default settings: hub messages and disk writes.

One simulated hour of three modules sampling at the default interval, run
through the real :class:`agent.outbox.Outbox` on a fake clock, with the link
up and every pack acknowledged at once. Two baselines run in the same
process on the same disk:

* messages: one message per reading (what a naive agent sends);
* disk writes: a naive durable queue, one ``synchronous=FULL`` SQLite commit
  per reading and per acknowledgement.

Disk writes are the ``write_bytes`` of ``/proc/self/io``: bytes of page
cache this process dirtied, which the kernel then writes out. A page
dirtied again before it is written counts once, as it costs the card once.

Run: ``python bench/outbox_cost.py`` (about a second); it writes
``bench/results/outbox_cost.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import sqlite3
import sys
import tempfile
from pathlib import Path

from agent.config import OutboxConfig
from agent.outbox import Outbox
from agent.properties import defaults_for

RESULTS = Path(__file__).parent / "results" / "outbox_cost.json"
MODULES = ("moisture", "light", "temperature")
HOUR_S = 3600.0
START = 1_800_000_000.0
READING = {
    "taken_at": "2026-12-04T10:00:00.000+00:00",
    "temperature_c": 21.437,
    "humidity_pct": 48.12,
}


class FakeNow:
    """The simulated clock the outbox reads."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        """Return the simulated Unix time."""
        return self.now


def write_bytes() -> int:
    """Return bytes this process has caused to be written to storage."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


def run_outbox(directory: Path) -> dict[str, float]:
    """Drive the outbox through one simulated hour at default settings."""
    settings = OutboxConfig()
    interval_s = float(defaults_for("light")["sample_interval_s"])
    clock = FakeNow()
    outbox = Outbox(
        directory / "outbox.sqlite3",
        device_id="pi",
        max_rows=settings.max_rows,
        max_age_s=settings.max_age_s,
        now=clock,
    )
    before = write_bytes()
    readings = messages = fsyncs = 0
    next_sample = next_sync = START
    while clock.now < START + HOUR_S:
        if clock.now >= next_sample:
            for module_id in MODULES:
                outbox.append(module_id, READING, taken_at=clock.now)
                readings += 1
            next_sample += interval_s
        for module_id in MODULES:
            while pack := outbox.next_pack(
                module_id, max_latency_s=settings.max_latency_s
            ):
                outbox.acked(pack)
                messages += 1
        if clock.now >= next_sync:
            fsyncs += outbox.sync()
            next_sync += settings.commit_interval_s
        clock.now += 1.0
    fsyncs += outbox.sync()
    written = write_bytes() - before
    outbox.close()
    return {
        "readings": readings,
        "messages": messages,
        "fsyncs": fsyncs,
        "write_bytes": written,
    }


def run_naive(directory: Path, readings: int) -> dict[str, float]:
    """A durable queue with one fsynced commit per reading and per ack."""
    db = sqlite3.connect(directory / "naive.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE q (seq INTEGER PRIMARY KEY, body TEXT)")
    body = json.dumps(READING)
    before = write_bytes()
    for seq in range(1, readings + 1):
        db.execute("INSERT INTO q VALUES (?, ?)", (seq, body))
        db.execute("DELETE FROM q WHERE seq = ?", (seq,))
    written = write_bytes() - before
    db.close()
    return {"readings": readings, "messages": readings, "write_bytes": written}


def main() -> None:
    """Measure, print and save the figures."""
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        ours = run_outbox(Path(tmp))
        naive = run_naive(Path(tmp), int(ours["readings"]))
    settings = OutboxConfig()
    figures = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.node()}",
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "settings": {
            "modules": len(MODULES),
            "sample_interval_s": defaults_for("light")["sample_interval_s"],
            "max_latency_s": settings.max_latency_s,
            "commit_interval_s": settings.commit_interval_s,
        },
        "per_hour": {"outbox": ours, "one_message_per_reading_baseline": naive},
        "messages_per_reading": round(ours["messages"] / ours["readings"], 3),
        "baseline_messages_per_reading": 1.0,
        "disk_write_bytes_per_hour": ours["write_bytes"],
        "baseline_disk_write_bytes_per_hour": naive["write_bytes"],
        "disk_write_ratio": round(
            ours["write_bytes"] / max(naive["write_bytes"], 1), 3
        ),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
