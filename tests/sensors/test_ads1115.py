"""Tests for the ADS1115 moisture driver against a register-level fake bus."""

from __future__ import annotations

import errno

import pytest

from sensors.ads1115 import create_ads1115
from sensors.base import SensorMisconfigured, SensorUnavailable
from tests.sensors.fake_smbus import FakeADS1115, FakeSMBus
from tests.sensors.fakes import FakeClock

CALIBRATION = {"dry_raw": 20000, "wet_raw": 10000}


async def test_single_shot_on_the_channel_with_gain_and_rate(
    fake_clock: FakeClock,
) -> None:
    """Test the config word, the wait for OS, and the signed count scaled."""
    chip = FakeADS1115(fake_clock, volts=[0.0, 0.0, 1.536, 0.0])
    sensor = create_ads1115(
        {**CALIBRATION, "channel": 2, "full_scale_v": 2.048, "data_rate": 250},
        clock=fake_clock,
        bus=FakeSMBus({0x48: chip}),
    )
    await sensor.open()

    reading = await sensor.read()

    # OS=1, MUX=110 (AIN2/GND), PGA=010, MODE=1, DR=101, comparator off.
    assert chip.configs_written == [0b1_110_010_1_101_00011]
    assert reading.values == {
        "moisture_pct": 0.0,
        "moisture_raw": 24576.0,
        "moisture_v": 1.536,
    }
    assert fake_clock.monotonic() >= 1 / 250


async def test_capacitive_probe_reads_lower_when_wet(fake_clock: FakeClock) -> None:
    """Test that a count between dry and wet maps linearly, either order."""
    chip = FakeADS1115(fake_clock, volts=[1.536, 0.0, 0.0, 0.0])  # 12288 counts
    sensor = create_ads1115(CALIBRATION, clock=fake_clock, bus=FakeSMBus({0x48: chip}))

    reading = await sensor.read()

    assert reading.values["moisture_pct"] == 77.12


async def test_reading_beyond_wet_is_clamped_to_100(fake_clock: FakeClock) -> None:
    """Test that a count past the wet calibration reports 100 %."""
    chip = FakeADS1115(fake_clock, volts=[0.5, 0.0, 0.0, 0.0])
    sensor = create_ads1115(CALIBRATION, clock=fake_clock, bus=FakeSMBus({0x48: chip}))

    reading = await sensor.read()

    assert reading.values["moisture_pct"] == 100.0


async def test_negative_input_is_read_as_signed(fake_clock: FakeClock) -> None:
    """Test two's complement: a small negative voltage gives a negative count."""
    chip = FakeADS1115(fake_clock, volts=[-0.001, 0.0, 0.0, 0.0])
    sensor = create_ads1115(CALIBRATION, clock=fake_clock, bus=FakeSMBus({0x48: chip}))

    reading = await sensor.read()

    assert reading.values["moisture_raw"] == -8.0


async def test_slow_chip_is_polled_until_ready(fake_clock: FakeClock) -> None:
    """Test that a conversion 10 % slow is waited for, not read early."""
    chip = FakeADS1115(fake_clock, volts=[2.048, 0.0, 0.0, 0.0])
    chip.slowness = 1.1
    sensor = create_ads1115(CALIBRATION, clock=fake_clock, bus=FakeSMBus({0x48: chip}))

    reading = await sensor.read()

    assert reading.values["moisture_raw"] == 16384.0


async def test_conversion_that_never_ends_fails_by_its_deadline(
    fake_clock: FakeClock,
) -> None:
    """Test the message when the OS bit never reads ready."""
    chip = FakeADS1115(fake_clock, volts=[1.0, 0.0, 0.0, 0.0])
    chip.stuck = True
    sensor = create_ads1115(CALIBRATION, clock=fake_clock, bus=FakeSMBus({0x48: chip}))

    with pytest.raises(SensorUnavailable) as caught:
        await sensor.read()

    assert str(caught.value) == (
        "ADS1115 on I2C 0x48 /dev/i2c-1: conversion not done after 18 ms; "
        "check the chip's power (VDD) and that nothing else drives its config "
        "register"
    )


async def test_timeouts_then_reply(fake_clock: FakeClock) -> None:
    """Test that ETIMEDOUT twice is retried and the third try reads."""
    chip = FakeADS1115(fake_clock, volts=[1.024, 0.0, 0.0, 0.0])
    bus = FakeSMBus({0x49: chip})
    sensor = create_ads1115({**CALIBRATION, "address": 0x49}, clock=fake_clock, bus=bus)
    bus.fail(0x49, errno.ETIMEDOUT, times=2)

    reading = await sensor.read()

    assert reading.values["moisture_raw"] == 8192.0


async def test_missing_at_start_then_plugged_in(fake_clock: FakeClock) -> None:
    """Test open() on an empty bus, then on the same sensor once it is wired."""
    bus = FakeSMBus()
    sensor = create_ads1115(CALIBRATION, clock=fake_clock, bus=bus)

    with pytest.raises(SensorUnavailable) as caught:
        await sensor.open()
    bus.chips[0x48] = FakeADS1115(fake_clock, volts=[2.5, 0.0, 0.0, 0.0])
    await sensor.open()
    reading = await sensor.read()

    assert str(caught.value) == (
        "ADS1115 on I2C 0x48 /dev/i2c-1: no reply (errno 121); "
        "check wiring or run i2cdetect -y 1"
    )
    assert reading.values["moisture_raw"] == 20000.0


def test_equal_calibration_is_refused(fake_clock: FakeClock) -> None:
    """Test the message when dry and wet counts are the same."""
    with pytest.raises(SensorMisconfigured) as caught:
        create_ads1115({"dry_raw": 100, "wet_raw": 100}, clock=fake_clock)

    assert str(caught.value) == (
        "options 'dry_raw' and 'wet_raw' are both 100; read the probe in dry air "
        "and in water and set each to the moisture_raw it reports"
    )


def test_missing_calibration_is_asked_for(fake_clock: FakeClock) -> None:
    """Test the message when the calibration is left out."""
    with pytest.raises(SensorMisconfigured) as caught:
        create_ads1115({}, clock=fake_clock)

    assert str(caught.value) == (
        "sensor driver 'ads1115' needs option 'dry_raw'; "
        "add dry_raw = ... to its sensor table"
    )
