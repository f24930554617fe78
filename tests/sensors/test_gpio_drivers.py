"""Tests for the gpiozero drivers (LDR, MCP3008, DO moisture) on MockFactory."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockChargingPin, MockFactory

from sensors.base import SensorMisconfigured
from sensors.ldr import create_ldr
from sensors.mcp3008 import create_mcp3008
from sensors.moisture_digital import create_moisture_digital
from tests.sensors.fake_spi import FakeMCP3008
from tests.sensors.fakes import FakeClock


async def test_ldr_in_the_dark_reads_zero(
    fake_clock: FakeClock, mock_factory: MockFactory
) -> None:
    """Test a capacitor that never charges within the limit: 0 %."""
    mock_factory.pin(18, pin_class=MockChargingPin, charge_time=10.0)
    sensor = create_ldr(
        {"pin": 18, "queue_len": 1}, clock=fake_clock, pin_factory=mock_factory
    )
    await sensor.open()
    try:
        reading = await sensor.read()
    finally:
        await sensor.close()

    assert reading.values == {"light_level_pct": 0.0}


async def test_ldr_in_bright_light_reads_high(
    fake_clock: FakeClock, mock_factory: MockFactory
) -> None:
    """Test a capacitor that charges at once: near 100 %, not lux."""
    mock_factory.pin(18, pin_class=MockChargingPin, charge_time=0.0)
    sensor = create_ldr(
        {"pin": 18, "queue_len": 1, "charge_time_limit_s": 0.5},
        clock=fake_clock,
        pin_factory=mock_factory,
    )
    await sensor.open()
    try:
        reading = await sensor.read()
    finally:
        await sensor.close()

    assert list(reading.values) == ["light_level_pct"]
    assert 50.0 < reading.values["light_level_pct"] <= 100.0


async def test_mcp3008_speaks_the_protocol_on_its_channel(
    fake_clock: FakeClock, mock_factory: MockFactory
) -> None:
    """Test a single-ended conversion of channel 5 mapped to percent."""
    chip = FakeMCP3008(mock_factory)
    chip.volts[5] = 1.65  # 512 counts of 1024 at 3.3 V
    sensor = create_mcp3008(
        {"channel": 5, "dry_raw": 832, "wet_raw": 352},
        clock=fake_clock,
        pin_factory=mock_factory,
    )
    await sensor.open()
    try:
        reading = await sensor.read()
    finally:
        await sensor.close()
        chip.close()

    assert chip.conversions == [(True, 5)]
    assert reading.values == {"moisture_pct": 66.67, "moisture_raw": 512.0}


async def test_digital_moisture_high_is_dry(
    fake_clock: FakeClock, mock_factory: MockFactory
) -> None:
    """Test DO high (dry) and low (wet) with the pull-up on."""
    sensor = create_moisture_digital(
        {"pin": 17}, clock=fake_clock, pin_factory=mock_factory
    )
    await sensor.open()
    pin = mock_factory.pin(17)
    try:
        pin.drive_high()
        dry = await sensor.read()
        pin.drive_low()
        wet = await sensor.read()
    finally:
        await sensor.close()

    assert (dry.values, wet.values) == ({"dry": True}, {"dry": False})
    assert pin.pull == "up"


async def test_digital_moisture_inverted_module(
    fake_clock: FakeClock, mock_factory: MockFactory
) -> None:
    """Test dry_when_high = false for modules that pull DO low when dry."""
    sensor = create_moisture_digital(
        {"pin": 22, "dry_when_high": False, "pull_up": False},
        clock=fake_clock,
        pin_factory=mock_factory,
    )
    await sensor.open()
    mock_factory.pin(22).drive_low()
    try:
        reading = await sensor.read()
    finally:
        await sensor.close()

    assert reading.values == {"dry": True}


async def test_fixed_pull_up_pin_is_a_config_error(
    fake_clock: FakeClock, mock_factory: MockFactory
) -> None:
    """Test gpiozero's refusal of a pull-down on GPIO2 becomes SensorMisconfigured."""
    sensor = create_moisture_digital(
        {"pin": 2, "pull_up": False}, clock=fake_clock, pin_factory=mock_factory
    )

    with pytest.raises(SensorMisconfigured) as caught:
        await sensor.open()

    assert str(caught.value) == (
        "moisture DO on GPIO2: GPIO2 has a fixed pull resistor; check the pin "
        "numbers (BCM numbering) and the wiring table in the README"
    )


async def test_pin_in_use_is_a_config_error(
    fake_clock: FakeClock, mock_factory: MockFactory
) -> None:
    """Test two sensors on one pin: the second says to give each its own."""
    first = create_moisture_digital(
        {"pin": 17}, clock=fake_clock, pin_factory=mock_factory
    )
    second = create_moisture_digital(
        {"pin": 17}, clock=fake_clock, pin_factory=mock_factory
    )
    await first.open()
    try:
        with pytest.raises(SensorMisconfigured) as caught:
            await second.open()
    finally:
        await first.close()

    assert str(caught.value).startswith("moisture DO on GPIO17: pin GPIO17 is ")
    assert str(caught.value).endswith("; give each sensor its own pin")


def test_even_samples_are_refused_for_a_yes_no_sensor(fake_clock: FakeClock) -> None:
    """Test that a majority needs an odd number of samples."""
    with pytest.raises(SensorMisconfigured) as caught:
        create_moisture_digital({"pin": 17, "samples": 2}, clock=fake_clock)

    assert str(caught.value) == (
        "option 'samples' = 2 must be odd (a majority decides); e.g. samples = 3"
    )
