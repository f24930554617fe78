"""Tests for the DHT22/DHT11 drivers with a fake that acts like adafruit_dht."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util

import pytest

from sensors.base import SensorMisconfigured, SensorUnavailable
from sensors.dht import create_dht11, create_dht22
from tests.sensors.fake_dht import BUFFER, CHECKSUM, HANG, FakeDht, FakeDhtReader
from tests.sensors.fakes import FakeClock


async def test_temperature_and_humidity_come_from_one_measurement(
    fake_clock: FakeClock,
) -> None:
    """Test one reading triggers one measurement and uses the pin asked for."""
    device = FakeDht(fake_clock, [(21.5, 48.2)])
    reader = FakeDhtReader(device)
    sensor = create_dht22({"pin": 17}, clock=fake_clock, dht_reader=reader)
    await sensor.open()

    reading = await sensor.read()

    assert reading.values == {"temperature_c": 21.5, "humidity_pct": 48.2}
    assert device.measurements == 1
    assert reader.pins == [17]


async def test_failure_burst_is_retried_at_the_parts_pace(
    fake_clock: FakeClock,
) -> None:
    """Test two failures then a success, each try after the 2 s the library needs."""
    device = FakeDht(fake_clock, [CHECKSUM, BUFFER, (19.0, 55.0)])
    sensor = create_dht22(
        {"pin": 4}, clock=fake_clock, dht_reader=FakeDhtReader(device)
    )

    reading = await sensor.read()

    assert reading.values == {"temperature_c": 19.0, "humidity_pct": 55.0}
    assert device.measurements == 3
    assert fake_clock.monotonic() == pytest.approx(4.2)


async def test_failed_read_never_publishes_stale_values(
    fake_clock: FakeClock,
) -> None:
    """Test that after a good reading, failing tries raise instead of repeating it."""
    device = FakeDht(fake_clock, [(20.0, 50.0), CHECKSUM, CHECKSUM, BUFFER])
    sensor = create_dht22(
        {"pin": 4}, clock=fake_clock, dht_reader=FakeDhtReader(device)
    )
    await sensor.read()

    with pytest.raises(SensorUnavailable) as caught:
        await sensor.read()

    assert str(caught.value) == (
        "DHT22 on GPIO4: no good reading in 3 tries (last: A full buffer was not "
        "returned); check the wiring, the pull-up resistor (4.7-10 kohm) and the "
        "power"
    )
    assert device.measurements == 4


async def test_out_of_range_values_are_a_failed_try(fake_clock: FakeClock) -> None:
    """Test that 85 degC from a DHT22 is refused and the next try used."""
    device = FakeDht(fake_clock, [(85.0, 40.0), (22.0, 40.0)])
    sensor = create_dht22(
        {"pin": 4}, clock=fake_clock, dht_reader=FakeDhtReader(device)
    )

    reading = await sensor.read()

    assert reading.values == {"temperature_c": 22.0, "humidity_pct": 40.0}


async def test_dht11_range_refuses_below_zero(fake_clock: FakeClock) -> None:
    """Test the DHT11's 0..50 degC range with a single try."""
    device = FakeDht(fake_clock, [(-3.0, 40.0)])
    sensor = create_dht11(
        {"pin": 4, "attempts": 1}, clock=fake_clock, dht_reader=FakeDhtReader(device)
    )

    with pytest.raises(SensorUnavailable) as caught:
        await sensor.read()

    assert str(caught.value) == (
        "DHT11 on GPIO4: no good reading in 1 try (last: implausible temperature "
        "-3 degC); check the wiring, the pull-up resistor (4.7-10 kohm) and the "
        "power"
    )


async def test_median_over_samples(fake_clock: FakeClock) -> None:
    """Test samples = 3 takes three fresh measurements and keeps the median."""
    device = FakeDht(fake_clock, [(20.0, 40.0), (35.0, 41.0), (20.4, 90.0)])
    sensor = create_dht22(
        {"pin": 4, "samples": 3}, clock=fake_clock, dht_reader=FakeDhtReader(device)
    )

    reading = await sensor.read()

    assert reading.values == {"temperature_c": 20.4, "humidity_pct": 41.0}


async def test_hung_read_misses_its_deadline_then_is_skipped(
    fake_clock: FakeClock,
) -> None:
    """Test a read stuck in the library: deadline, then skipped and counted."""
    device = FakeDht(fake_clock, [HANG, (23.0, 45.0)])
    sensor = create_dht22(
        {"pin": 4, "timeout_s": 0.05},
        clock=fake_clock,
        dht_reader=FakeDhtReader(device),
    )
    try:
        with pytest.raises(SensorUnavailable) as first:
            await sensor.read()
        with pytest.raises(SensorUnavailable) as second:
            await sensor.read()
    finally:
        device.released.set()

    assert str(first.value) == (
        "DHT22 on GPIO4: no answer within 0.05 s; check the wiring and power"
    )
    assert str(second.value) == (
        "DHT22 on GPIO4: the previous read is still running; read skipped "
        "(1 so far); if this repeats, check the wiring and power"
    )
    assert getattr(sensor, "skipped_reads") == 1  # noqa: B009 - not on Sensor


async def test_close_on_cancel_ends_a_stuck_read_and_exits_once(
    fake_clock: FakeClock,
) -> None:
    """Test that cancelling (as SIGTERM does) closes, and exit() runs once."""
    device = FakeDht(fake_clock, [HANG])
    sensor = create_dht22(
        {"pin": 4, "timeout_s": 5}, clock=fake_clock, dht_reader=FakeDhtReader(device)
    )
    await sensor.open()

    async def runner() -> None:
        try:
            await sensor.read()
        finally:
            await sensor.close()

    task = asyncio.create_task(runner())
    await asyncio.to_thread(device.hanging.wait, 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await sensor.close()

    assert device.exits == 1
    assert device.released.is_set()


@pytest.mark.skipif(
    importlib.util.find_spec("adafruit_dht") is not None,
    reason="adafruit_dht is installed here",
)
async def test_missing_library_says_what_to_install(fake_clock: FakeClock) -> None:
    """Test the default reader on a machine without adafruit_dht."""
    sensor = create_dht22({"pin": 4}, clock=fake_clock)

    with pytest.raises(SensorMisconfigured) as caught:
        await sensor.open()

    assert str(caught.value) == (
        "DHT22 on GPIO4: needs the Python module 'adafruit_dht', which is not "
        "installed; install the Pi extras: pip install 'pitwin[pi]'"
    )


def test_pin_off_the_header_is_refused(fake_clock: FakeClock) -> None:
    """Test the message for a pin number that is not a header GPIO."""
    with pytest.raises(SensorMisconfigured) as caught:
        create_dht22({"pin": 40}, clock=fake_clock)

    assert str(caught.value) == (
        "option 'pin' = 40 must be a BCM GPIO number from 0 to 27; "
        "e.g. pin = 4 for GPIO4 (header pin 7)"
    )
