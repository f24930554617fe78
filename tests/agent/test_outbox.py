import json
import re
from pathlib import Path

import pytest

from agent.errors import StorageError
from agent.outbox import METER_BYTES, PACK_BODY_BYTES, Outbox


class FakeNow:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_now() -> FakeNow:
    return FakeNow()


def make(path: Path, fake_now: FakeNow, **bounds: float) -> Outbox:
    return Outbox(
        path / "outbox.sqlite3",
        device_id="pi",
        max_rows=int(bounds.get("max_rows", 1000)),
        max_age_s=bounds.get("max_age_s", 86_400.0),
        now=fake_now,
    )


def add(outbox: Outbox, fake_now: FakeNow, module: str, n: int) -> list[int]:
    return [
        outbox.append(module, {"lux": float(i)}, taken_at=fake_now.now)
        for i in range(n)
    ]


def test_sequence_numbers_count_per_module(tmp_path: Path, fake_now: FakeNow) -> None:
    """Test that each module numbers its readings from 1, on its own."""
    outbox = make(tmp_path, fake_now)

    assert add(outbox, fake_now, "light", 3) == [1, 2, 3]
    assert add(outbox, fake_now, "moisture", 2) == [1, 2]


def test_partial_pack_waits_for_max_latency(tmp_path: Path, fake_now: FakeNow) -> None:
    """Test that a few readings wait until the oldest is max_latency_s old."""
    outbox = make(tmp_path, fake_now)
    add(outbox, fake_now, "light", 3)

    assert outbox.next_pack("light", max_latency_s=60) is None
    assert outbox.due_in_s("light", max_latency_s=60) == 60
    fake_now.now += 60
    pack = outbox.next_pack("light", max_latency_s=60)

    assert pack is not None
    assert (pack.first_seq, pack.last_seq, pack.count) == (1, 3, 3)
    assert re.fullmatch(r"pi:light:[0-9a-f]{6}:1-3", pack.message_id)
    assert json.loads(pack.body) == {
        "module": "light",
        "first_seq": 1,
        "last_seq": 3,
        "readings": [
            {"seq": 1, "lux": 0.0},
            {"seq": 2, "lux": 1.0},
            {"seq": 3, "lux": 2.0},
        ],
    }


def test_full_pack_goes_at_once_and_fits_the_meter(
    tmp_path: Path, fake_now: FakeNow
) -> None:
    """Test that readings filling 4 KB form a pack without waiting."""
    outbox = make(tmp_path, fake_now)
    add(outbox, fake_now, "light", 300)

    pack = outbox.next_pack("light", max_latency_s=3600)

    assert pack is not None
    assert len(pack.body.encode()) <= PACK_BODY_BYTES < METER_BYTES
    assert len(pack.body.encode()) > PACK_BODY_BYTES - 40
    assert pack.first_seq == 1
    assert pack.count == pack.last_seq


def test_unacknowledged_pack_is_resent_unchanged(
    tmp_path: Path, fake_now: FakeNow
) -> None:
    """Test that a resend carries the same range and message id."""
    outbox = make(tmp_path, fake_now)
    add(outbox, fake_now, "light", 2)
    fake_now.now += 100
    first = outbox.next_pack("light", max_latency_s=10)
    add(outbox, fake_now, "light", 5)

    again = outbox.next_pack("light", max_latency_s=10)

    assert again == first


def test_ack_deletes_and_next_pack_follows(tmp_path: Path, fake_now: FakeNow) -> None:
    """Test that acknowledged readings go and the next pack starts after them."""
    outbox = make(tmp_path, fake_now)
    add(outbox, fake_now, "light", 2)
    fake_now.now += 100
    pack = outbox.next_pack("light", max_latency_s=10)
    assert pack is not None
    add(outbox, fake_now, "light", 1)

    outbox.acked(pack)
    fake_now.now += 100
    after = outbox.next_pack("light", max_latency_s=10)

    assert after is not None
    assert (after.first_seq, after.last_seq) == (3, 3)
    assert outbox.stats("light").depth == 1
    assert outbox.stats("light").last_sent == fake_now.now - 100


def test_sequence_and_inflight_pack_survive_reopen(
    tmp_path: Path, fake_now: FakeNow
) -> None:
    """Test that a restarted agent resends the same pack and keeps counting."""
    outbox = make(tmp_path, fake_now)
    add(outbox, fake_now, "light", 2)
    fake_now.now += 100
    pack = outbox.next_pack("light", max_latency_s=10)
    outbox.close()

    reopened = make(tmp_path, fake_now)

    assert reopened.next_pack("light", max_latency_s=10) == pack
    assert add(reopened, fake_now, "light", 1) == [3]


def test_row_bound_drops_oldest_and_counts(tmp_path: Path, fake_now: FakeNow) -> None:
    """Test that past max_rows the oldest readings are dropped and counted."""
    outbox = make(tmp_path, fake_now, max_rows=5)

    add(outbox, fake_now, "light", 8)

    stats = outbox.stats("light")
    assert (stats.depth, stats.dropped) == (5, 3)
    fake_now.now += 100
    pack = outbox.next_pack("light", max_latency_s=10)
    assert pack is not None
    assert pack.first_seq == 4


def test_age_bound_drops_old_readings(tmp_path: Path, fake_now: FakeNow) -> None:
    """Test that readings older than max_age_s are dropped on the next append."""
    outbox = make(tmp_path, fake_now, max_age_s=60)
    add(outbox, fake_now, "light", 2)
    fake_now.now += 61

    add(outbox, fake_now, "light", 1)

    stats = outbox.stats("light")
    assert (stats.depth, stats.dropped, stats.oldest_age_s) == (1, 2, 0.0)


def test_sync_forces_only_when_something_changed(
    tmp_path: Path, fake_now: FakeNow
) -> None:
    """Test that sync writes after a change and is free when idle."""
    outbox = make(tmp_path, fake_now)
    add(outbox, fake_now, "light", 1)

    assert outbox.sync() is True
    assert outbox.sync() is False
    assert (tmp_path / "outbox.sqlite3-wal").exists()


def test_damaged_outbox_is_set_aside_and_a_new_one_started(
    tmp_path: Path, fake_now: FakeNow, caplog: pytest.LogCaptureFixture
) -> None:
    """Test that a file that is not a database does not stop the agent."""
    (tmp_path / "outbox.sqlite3").write_bytes(b"\\x00garbage" * 500)

    outbox = make(tmp_path, fake_now)

    assert add(outbox, fake_now, "light", 1) == [1]
    aside = list(tmp_path.glob("outbox.sqlite3.corrupt-*"))
    assert len(aside) == 1
    assert "outbox unreadable, set aside" in caplog.text


def test_full_disk_is_a_storage_error_naming_the_file(
    tmp_path: Path, fake_now: FakeNow
) -> None:
    """Test that SQLite's disk-full error comes out as one clear StorageError."""
    outbox = make(tmp_path, fake_now)
    add(outbox, fake_now, "light", 1)
    # SQLite answers SQLITE_FULL past this many pages, as on a full card.
    pages = outbox._db.execute("PRAGMA page_count").fetchone()[0]
    outbox._db.execute(f"PRAGMA max_page_count = {pages}")

    with pytest.raises(StorageError) as caught:
        add(outbox, fake_now, "light", 50)

    assert str(caught.value) == (
        f"outbox {tmp_path / 'outbox.sqlite3'}: database or disk is full; "
        "free space on that disk or check the state_dir"
    )


def test_bounds_spare_the_pack_in_flight(tmp_path: Path, fake_now: FakeNow) -> None:
    """Test that dropping old rows never changes a pack that may be delivered."""
    outbox = make(tmp_path, fake_now, max_rows=3)
    add(outbox, fake_now, "light", 3)
    fake_now.now += 100
    sent = outbox.next_pack("light", max_latency_s=10)

    add(outbox, fake_now, "light", 4)
    again = outbox.next_pack("light", max_latency_s=10)

    assert again == sent


def test_new_packs_after_a_restart_get_new_ids(
    tmp_path: Path, fake_now: FakeNow
) -> None:
    """Test that sequence numbers reused after a power cut cannot reuse an id."""
    first = make(tmp_path, fake_now)
    add(first, fake_now, "light", 1)
    fake_now.now += 100
    before = first.next_pack("light", max_latency_s=10)
    assert before is not None
    first.acked(before)
    first.close()

    second = make(tmp_path, fake_now)
    add(second, fake_now, "light", 1)
    fake_now.now += 100
    after = second.next_pack("light", max_latency_s=10)

    assert after is not None
    assert after.message_id.split(":")[2] != before.message_id.split(":")[2]
