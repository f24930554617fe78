"""Tests for running blocking reads off the loop: deadlines, skips, bus locks."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sensors.base import SensorUnavailable
from sensors.bh1750 import create_bh1750
from sensors.blocking import BlockingCalls, bus_lock
from sensors.dht import create_dht22
from tests.sensors.fake_dht import HANG, FakeDht, FakeDhtReader
from tests.sensors.fake_smbus import FakeBH1750, FakeSMBus
from tests.sensors.fakes import FakeClock


async def test_hung_sensor_leaves_the_others_reading(fake_clock: FakeClock) -> None:
    """Test that a BH1750 reads three times while a DHT22 read hangs."""
    dht = FakeDht(fake_clock, [HANG, (24.0, 50.0)])
    hung = create_dht22(
        {"pin": 4, "timeout_s": 9}, clock=fake_clock, dht_reader=FakeDhtReader(dht)
    )
    light = create_bh1750(
        {}, clock=fake_clock, bus=FakeSMBus({0x23: FakeBH1750(fake_clock, lux=90.0)})
    )
    stuck = asyncio.create_task(hung.read())
    try:
        await asyncio.to_thread(dht.hanging.wait, 5)
        readings = [await light.read() for _ in range(3)]
        still_stuck = not stuck.done()
    finally:
        dht.released.set()
        await asyncio.gather(stuck, return_exceptions=True)

    assert [r.values for r in readings] == [{"illuminance_lux": 90.0}] * 3
    assert still_stuck


async def test_one_lock_per_bus() -> None:
    """Test that chips on /dev/i2c-1 share a lock and /dev/i2c-3 has its own."""
    assert bus_lock("/dev/i2c-1") is bus_lock("/dev/i2c-1")
    assert bus_lock("/dev/i2c-1") is not bus_lock("/dev/i2c-3")


async def test_same_bus_waits_until_the_thread_really_ends() -> None:
    """Test that a timed-out call keeps the bus until its thread returns."""
    gate = threading.Event()
    first = BlockingCalls("chip A", "/dev/i2c-1")
    second = BlockingCalls("chip B", "/dev/i2c-1")
    other = BlockingCalls("chip C", "/dev/i2c-3")
    try:
        with pytest.raises(SensorUnavailable) as timed_out:
            await first.call(lambda: gate.wait(5), deadline_s=0.05)
        with pytest.raises(SensorUnavailable) as blocked:
            await second.call(lambda: "B", deadline_s=0.05)
        free = await other.call(lambda: "C", deadline_s=1)
    finally:
        gate.set()
    after = await second.call(lambda: "B", deadline_s=5)

    assert (
        str(timed_out.value)
        == "chip A: no answer within 0.05 s; check the wiring and power"
    )
    assert str(blocked.value) == (
        "chip B: /dev/i2c-1 stayed busy for 0.05 s (another part's call on it "
        "hangs); read skipped"
    )
    assert (free, after) == ("C", "B")
