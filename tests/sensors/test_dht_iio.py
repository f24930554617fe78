"""Tests for the dht11-iio driver against a sysfs tree in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensors.base import SensorMisconfigured
from sensors.dht import create_dht11_iio
from tests.sensors.fakes import FakeClock


def _iio_device(root: Path, n: int, name: str, temp: str, rh: str) -> Path:
    device = root / f"iio:device{n}"
    device.mkdir(parents=True)
    (device / "name").write_text(name + "\n")
    (device / "in_temp_input").write_text(temp + "\n")
    (device / "in_humidityrelative_input").write_text(rh + "\n")
    return device


async def test_finds_the_dht11_device_and_scales_milli_units(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    """Test discovery by name among other IIO devices and milli-unit scaling."""
    _iio_device(tmp_path, 0, "mcp3424", "0", "0")
    _iio_device(tmp_path, 1, "dht11@4", "23400", "51700")
    sensor = create_dht11_iio({"part": "dht22"}, clock=fake_clock, iio_root=tmp_path)
    await sensor.open()

    reading = await sensor.read()

    assert reading.values == {"temperature_c": 23.4, "humidity_pct": 51.7}


async def test_no_overlay_says_how_to_load_it(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    """Test the message when no dht11 IIO device exists."""
    sensor = create_dht11_iio({}, clock=fake_clock, iio_root=tmp_path)

    with pytest.raises(SensorMisconfigured) as caught:
        await sensor.open()

    assert str(caught.value) == (
        f"no dht11 IIO device in {tmp_path}; add dtoverlay=dht11,gpiopin=4 (your "
        "data pin) to /boot/firmware/config.txt and reboot"
    )


async def test_out_of_range_dht11_value_fails_the_read(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    """Test that 60 degC from a DHT11 publishes nothing."""
    _iio_device(tmp_path, 0, "dht11@0", "60000", "40000")
    sensor = create_dht11_iio({"attempts": 2}, clock=fake_clock, iio_root=tmp_path)

    with pytest.raises(Exception) as caught:  # noqa: PT011 - message asserted
        await sensor.read()

    assert str(caught.value) == (
        "DHT11 on IIO iio:device0: no good reading in 2 tries (last: implausible "
        "temperature 60 degC); check the wiring, the pull-up resistor (4.7-10 "
        "kohm) and the power"
    )
    assert fake_clock.monotonic() == pytest.approx(1.0)
