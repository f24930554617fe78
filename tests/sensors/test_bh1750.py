"""Tests for the BH1750 driver against a register-level fake bus."""

from __future__ import annotations

import errno

import pytest

from sensors.base import SensorMisconfigured, SensorUnavailable
from sensors.bh1750 import create_bh1750
from tests.sensors.fake_smbus import FakeBH1750, FakeSMBus
from tests.sensors.fakes import FakeClock


async def test_reads_lux_after_the_worst_case_conversion(fake_clock: FakeClock) -> None:
    """Test power on, MTreg, one-time H-res, the 180 ms wait and MSB-first bytes."""
    chip = FakeBH1750(fake_clock, lux=1000.0)  # 1200 counts = 0x04B0
    sensor = create_bh1750({}, clock=fake_clock, bus=FakeSMBus({0x23: chip}))
    await sensor.open()

    reading = await sensor.read()

    assert reading.values == {"illuminance_lux": 1000.0}
    assert chip.commands[-4:] == [0x01, 0x42, 0x65, 0x20]
    assert fake_clock.monotonic() == pytest.approx(0.180)


async def test_high2_and_mtreg_scale_the_count(fake_clock: FakeClock) -> None:
    """Test lux = count / 1.2 / 2 * 69 / MTreg in H-resolution mode 2."""
    chip = FakeBH1750(fake_clock, lux=250.0)
    bus = FakeSMBus({0x5C: chip})
    sensor = create_bh1750(
        {"address": 0x5C, "resolution": "high2", "mtreg": 138},
        clock=fake_clock,
        bus=bus,
    )

    reading = await sensor.read()

    assert reading.values == {"illuminance_lux": 250.0}
    assert chip.mtreg == 138
    assert fake_clock.monotonic() == pytest.approx(0.360)


async def test_low_resolution_waits_only_24_ms(fake_clock: FakeClock) -> None:
    """Test the L-resolution conversion time."""
    chip = FakeBH1750(fake_clock, lux=40.0)
    sensor = create_bh1750(
        {"resolution": "low"}, clock=fake_clock, bus=FakeSMBus({0x23: chip})
    )

    reading = await sensor.read()

    assert reading.values == {"illuminance_lux": 40.0}
    assert fake_clock.monotonic() == pytest.approx(0.024)


async def test_median_of_samples(fake_clock: FakeClock) -> None:
    """Test that samples = 3 measures three times and keeps the median."""
    chip = FakeBH1750(fake_clock, lux=100.0)
    sensor = create_bh1750(
        {"samples": 3}, clock=fake_clock, bus=FakeSMBus({0x23: chip})
    )

    reading = await sensor.read()

    assert reading.values == {"illuminance_lux": 100.0}
    assert chip.commands.count(0x20) == 3


async def test_brief_nack_is_retried(fake_clock: FakeClock) -> None:
    """Test that two NACKs in a row are retried and the reading still comes."""
    chip = FakeBH1750(fake_clock, lux=10.0)
    bus = FakeSMBus({0x23: chip})
    sensor = create_bh1750({}, clock=fake_clock, bus=bus)
    bus.fail(0x23, errno.EREMOTEIO, times=2)

    reading = await sensor.read()

    assert reading.values == {"illuminance_lux": 10.0}


async def test_lasting_eio_names_the_chip_and_the_fix(fake_clock: FakeClock) -> None:
    """Test the message after the retries run out on EIO."""
    bus = FakeSMBus({0x23: FakeBH1750(fake_clock, lux=10.0)})
    sensor = create_bh1750({}, clock=fake_clock, bus=bus)
    bus.fail(0x23, errno.EIO, times=3)

    with pytest.raises(SensorUnavailable) as caught:
        await sensor.read()

    assert str(caught.value) == (
        "BH1750 on I2C 0x23 /dev/i2c-1: I/O error (errno 5); "
        "check wiring or run i2cdetect -y 1"
    )


async def test_missing_at_start_then_plugged_in(fake_clock: FakeClock) -> None:
    """Test that open() fails while the chip is absent and works once it is there."""
    bus = FakeSMBus()
    sensor = create_bh1750({}, clock=fake_clock, bus=bus)

    with pytest.raises(SensorUnavailable) as caught:
        await sensor.open()
    bus.chips[0x23] = FakeBH1750(fake_clock, lux=320.0)
    await sensor.open()
    reading = await sensor.read()

    assert str(caught.value) == (
        "BH1750 on I2C 0x23 /dev/i2c-1: no reply (errno 121); "
        "check wiring or run i2cdetect -y 1"
    )
    assert reading.values == {"illuminance_lux": 320.0}


async def test_unplugged_then_back_reads_without_reopening(
    fake_clock: FakeClock,
) -> None:
    """Test that a chip that lost power answers again on the next read."""
    chip = FakeBH1750(fake_clock, lux=55.0)
    bus = FakeSMBus({0x23: chip})
    sensor = create_bh1750({}, clock=fake_clock, bus=bus)
    await sensor.open()

    del bus.chips[0x23]
    with pytest.raises(SensorUnavailable):
        await sensor.read()
    bus.chips[0x23] = FakeBH1750(fake_clock, lux=60.0)
    reading = await sensor.read()

    assert reading.values == {"illuminance_lux": 60.0}


async def test_missing_bus_device_says_how_to_enable_i2c(
    fake_clock: FakeClock,
) -> None:
    """Test opening a bus that does not exist on this machine."""
    sensor = create_bh1750({"i2c_bus": 99}, clock=fake_clock)

    with pytest.raises(SensorMisconfigured) as caught:
        await sensor.open()

    assert str(caught.value) == (
        "BH1750 on I2C 0x23 /dev/i2c-99: /dev/i2c-99 does not exist; enable I2C "
        "(sudo raspi-config nonint do_i2c 0) and reboot, or set i2c_bus to a "
        "bus that i2cdetect -l lists"
    )


async def test_close_leaves_a_given_bus_open_and_is_idempotent(
    fake_clock: FakeClock,
) -> None:
    """Test that close() twice is harmless and a given bus stays its owner's."""
    bus = FakeSMBus({0x23: FakeBH1750(fake_clock)})
    sensor = create_bh1750({}, clock=fake_clock, bus=bus)
    await sensor.open()

    await sensor.close()
    await sensor.close()

    assert not bus.closed


def test_wrong_address_is_refused(fake_clock: FakeClock) -> None:
    """Test the message for an address the BH1750 cannot have."""
    with pytest.raises(SensorMisconfigured) as caught:
        create_bh1750({"address": 0x48}, clock=fake_clock)

    assert str(caught.value) == (
        "option 'address' = 0x48 is not an address of the BH1750; use 0x23 or 0x5c"
    )


def test_unknown_resolution_is_refused(fake_clock: FakeClock) -> None:
    """Test the message for a misspelt resolution."""
    with pytest.raises(SensorMisconfigured) as caught:
        create_bh1750({"resolution": "hi"}, clock=fake_clock)

    assert str(caught.value) == (
        'option \'resolution\' = \'hi\' must be one of "high", "high2", "low"; '
        'e.g. resolution = "high"'
    )
