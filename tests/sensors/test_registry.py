"""Tests for building sensors by driver name from their options table."""

from __future__ import annotations

import datetime as dt

import pytest

from sensors import registry
from sensors.base import SensorMisconfigured
from sensors.registry import available_drivers, create_sensor
from sensors.simulated import SimulatedLight, SimulatedMoisture, SimulatedTemperature
from sensors.trace import TraceSensor
from tests.sensors.fakes import FakeClock


def test_available_drivers_are_listed_sorted() -> None:
    """Test the names a config file may give as a module's driver."""
    assert available_drivers() == (
        "ads1115",
        "bh1750",
        "dht11",
        "dht11-iio",
        "dht22",
        "ldr",
        "mcp3008",
        "moisture-digital",
        "simulated-light",
        "simulated-moisture",
        "simulated-temperature",
        "trace",
    )


@pytest.mark.parametrize(
    ("driver", "options", "expected"),
    [
        ("simulated-light", {}, SimulatedLight),
        ("simulated-temperature", {"seed": 4}, SimulatedTemperature),
        ("simulated-moisture", {"watering": "none"}, SimulatedMoisture),
        ("trace", {"path": "office.csv"}, TraceSensor),
    ],
    ids=["light", "temperature", "moisture", "trace"],
)
def test_each_driver_builds_its_sensor(
    fake_clock: FakeClock, driver: str, options: dict[str, object], expected: type
) -> None:
    """Test that each driver name builds the matching sensor class."""
    sensor = create_sensor(driver, options, clock=fake_clock)

    assert isinstance(sensor, expected)


async def test_options_reach_the_model(fake_clock: FakeClock) -> None:
    """Test that TOML-shaped options (ints, ISO strings) configure the sensor."""
    sensor = create_sensor(
        "simulated-moisture",
        {
            "speed": 3600,
            "start": "2024-03-01T06:00:00+01:00",
            "initial_pct": 80,
            "watering": "none",
            "noise_pct": 0,
        },
        clock=fake_clock,
    )
    await sensor.open()

    reading = await sensor.read()

    assert reading.values == {"moisture_pct": 80.0}
    assert isinstance(sensor, SimulatedMoisture)
    assert sensor.simulated_time() == dt.datetime(
        2024, 3, 1, 6, tzinfo=dt.timezone(dt.timedelta(hours=1))
    )


def test_list_is_accepted_for_quantities(fake_clock: FakeClock) -> None:
    """Test that a TOML array of names becomes the trace's quantities."""
    sensor = create_sensor(
        "trace", {"path": "t.csv", "quantities": ["co2_ppm"]}, clock=fake_clock
    )

    assert sensor.quantities == ("co2_ppm",)


async def test_system_clock_is_the_default() -> None:
    """Test that without a clock the sensor runs on the real one."""
    sensor = create_sensor("simulated-temperature", {})
    await sensor.open()

    reading = await sensor.read()

    assert -10.0 < reading.values["temperature_c"] < 50.0
    assert reading.taken_at.tzinfo is dt.UTC


def test_unknown_driver_lists_the_known_ones() -> None:
    """Test the message for a driver name nobody registered."""
    with pytest.raises(SensorMisconfigured) as caught:
        create_sensor("bh1750x", {})

    assert str(caught.value) == (
        "unknown sensor driver 'bh1750x'; use one of: ads1115, bh1750, dht11, "
        "dht11-iio, dht22, ldr, mcp3008, moisture-digital, simulated-light, "
        "simulated-moisture, simulated-temperature, trace"
    )


def test_unknown_option_lists_the_known_ones() -> None:
    """Test the message for a misspelt option."""
    with pytest.raises(SensorMisconfigured) as caught:
        create_sensor("trace", {"path": "t.csv", "sped": 60})

    assert str(caught.value) == (
        "unknown option 'sped' for sensor driver 'trace'; "
        "use one of: loop, offset_s, path, quantities, speed"
    )


def test_missing_required_option_names_it() -> None:
    """Test the message when the trace driver gets no path."""
    with pytest.raises(SensorMisconfigured) as caught:
        create_sensor("trace", {"speed": 60})

    assert str(caught.value) == (
        "sensor driver 'trace' needs option 'path'; add path = ... to its sensor table"
    )


@pytest.mark.parametrize(
    ("driver", "options", "message"),
    [
        (
            "trace",
            {"path": "t.csv", "speed": "fast"},
            "option 'speed' = 'fast' is not a finite number; "
            "write a number, e.g. speed = 1.0",
        ),
        (
            "simulated-light",
            {"speed": float("nan")},
            "option 'speed' = nan is not a finite number; "
            "write a number, e.g. speed = 1.0",
        ),
        (
            "simulated-light",
            {"seed": 1.5},
            "option 'seed' = 1.5 is not a whole number; "
            "write a whole number, e.g. seed = 3",
        ),
        (
            "simulated-light",
            {"seed": True},
            "option 'seed' = True is not a whole number; "
            "write a whole number, e.g. seed = 3",
        ),
        (
            "simulated-light",
            {"cloudiness": False},
            "option 'cloudiness' = False is not a finite number; "
            "write a number, e.g. cloudiness = 1.0",
        ),
        (
            "trace",
            {"path": "t.csv", "loop": "yes"},
            "option 'loop' = 'yes' is not true or false; "
            "write loop = true or loop = false",
        ),
        (
            "trace",
            {"path": 3},
            "option 'path' = 3 is not a string; "
            'write a quoted string, e.g. path = "..."',
        ),
        (
            "trace",
            {"path": "t.csv", "quantities": "co2_ppm"},
            "option 'quantities' = 'co2_ppm' is not a list of names; "
            'write a list of quoted names, e.g. quantities = ["a", "b"]',
        ),
        (
            "simulated-moisture",
            {"start": "tomorrow"},
            "option 'start' = 'tomorrow' is not a date-time; write an ISO 8601 "
            "date-time, e.g. start = 2024-06-21T00:00:00Z",
        ),
    ],
    ids=[
        "string-for-number",
        "nan",
        "float-for-int",
        "bool-for-int",
        "bool-for-number",
        "string-for-bool",
        "int-for-string",
        "string-for-list",
        "bad-date",
    ],
)
def test_wrong_type_names_option_and_value(
    driver: str, options: dict[str, object], message: str
) -> None:
    """Test the message for an option of the wrong type."""
    with pytest.raises(SensorMisconfigured) as caught:
        create_sensor(driver, options)

    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("driver", "options", "message"),
    [
        (
            "trace",
            {"path": "t.csv", "speed": 0},
            "option 'speed' = 0.0 must be above 0; e.g. speed = 60",
        ),
        (
            "trace",
            {"path": "t.csv", "offset_s": -5},
            "option 'offset_s' = -5.0 must be 0 or more; e.g. offset_s = 0",
        ),
        (
            "trace",
            {"path": "t.csv", "quantities": []},
            "option 'quantities' = [] must be a non-empty list; "
            'e.g. quantities = ["temperature_c"]',
        ),
        (
            "simulated-light",
            {"cloudiness": 1.5},
            "option 'cloudiness' = 1.5 must be between 0 and 1; "
            "pick a value in that range, e.g. cloudiness = 0.5",
        ),
        (
            "simulated-light",
            {"latitude_deg": 123},
            "option 'latitude_deg' = 123.0 must be between -90 and 90; "
            "pick a value in that range, e.g. latitude_deg = 0",
        ),
        (
            "simulated-moisture",
            {"watering": "daily"},
            "option 'watering' = 'daily' must be one of random, periodic, none; "
            'e.g. watering = "periodic"',
        ),
    ],
    ids=["speed", "offset", "no-quantities", "cloudiness", "latitude", "watering"],
)
def test_out_of_range_names_option_and_value(
    driver: str, options: dict[str, object], message: str
) -> None:
    """Test the message for an option of the right type but a bad value."""
    with pytest.raises(SensorMisconfigured) as caught:
        create_sensor(driver, options)

    assert str(caught.value) == message


def test_driver_with_missing_library_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Test the message when a driver's module cannot be imported."""
    monkeypatch.setitem(
        registry._DRIVERS,
        "bh1750",
        "pitwin_missing_driver:create",
    )

    with pytest.raises(SensorMisconfigured) as caught:
        create_sensor("bh1750", {})

    assert str(caught.value) == (
        "sensor driver 'bh1750' needs the Python module 'pitwin_missing_driver', "
        "which is not installed; install the Pi extras: pip install 'pitwin[pi]'"
    )


@pytest.mark.parametrize(
    ("driver", "options", "quantities"),
    [
        ("dht22", {"pin": 4}, ("temperature_c", "humidity_pct")),
        ("dht11", {"pin": 4}, ("temperature_c", "humidity_pct")),
        ("dht11-iio", {}, ("temperature_c", "humidity_pct")),
        ("bh1750", {}, ("illuminance_lux",)),
        ("ldr", {"pin": 18}, ("light_level_pct",)),
        (
            "ads1115",
            {"dry_raw": 20000, "wet_raw": 9000},
            ("moisture_pct", "moisture_raw", "moisture_v"),
        ),
        ("mcp3008", {"dry_raw": 800, "wet_raw": 400}, ("moisture_pct", "moisture_raw")),
        ("moisture-digital", {"pin": 17}, ("dry",)),
    ],
    ids=["dht22", "dht11", "dht11-iio", "bh1750", "ldr", "ads1115", "mcp3008", "do"],
)
def test_hardware_drivers_build_without_hardware(
    fake_clock: FakeClock,
    driver: str,
    options: dict[str, object],
    quantities: tuple[str, ...],
) -> None:
    """Test that building a hardware driver touches no bus and no library."""
    sensor = create_sensor(driver, options, clock=fake_clock)

    assert sensor.quantities == quantities
