"""Tests for the simulated light, temperature and soil moisture sensors."""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
from collections.abc import Callable

import pytest

from sensors.base import Reading
from sensors.simulated import (
    LightConfig,
    MoistureConfig,
    SimulatedLight,
    SimulatedMoisture,
    SimulatedTemperature,
    TemperatureConfig,
)
from tests.sensors.fakes import FakeClock

HOUR_S = 3600.0
DAY_S = 24 * HOUR_S
MIDSUMMER = dt.datetime(2024, 6, 21, tzinfo=dt.UTC)
MIDWINTER = dt.datetime(2024, 12, 21, tzinfo=dt.UTC)

_Simulated = SimulatedLight | SimulatedTemperature | SimulatedMoisture


async def _read_at(
    sensor: _Simulated,
    clock: FakeClock,
    offsets_s: list[float],
) -> list[Reading]:
    """Open the sensor, then read it at each offset from the opening."""
    await sensor.open()
    opened = clock.monotonic()
    readings = []
    for offset_s in offsets_s:
        clock.advance(opened + offset_s - clock.monotonic())
        readings.append(await sensor.read())
    return readings


async def _lux_at(config: LightConfig, clock: FakeClock, hour: float) -> float:
    readings = await _read_at(
        SimulatedLight(config, clock=clock), clock, [hour * HOUR_S]
    )
    return readings[0].values["illuminance_lux"]


async def test_light_is_dark_at_midnight_and_bright_at_noon(
    fake_clock: FakeClock,
) -> None:
    """Test that a clear midsummer day goes from darkness to full sun."""
    config = LightConfig(start=MIDSUMMER, cloudiness=0.0)
    sensor = SimulatedLight(config, clock=fake_clock)

    midnight, noon = await _read_at(sensor, fake_clock, [0.0, 12 * HOUR_S])

    assert midnight.values["illuminance_lux"] < 1.0
    assert 80_000 < noon.values["illuminance_lux"] < 130_000


async def test_light_rises_with_the_sun(fake_clock: FakeClock) -> None:
    """Test that clear-sky light grows through the morning to noon."""
    config = LightConfig(start=MIDSUMMER, cloudiness=0.0)
    sensor = SimulatedLight(config, clock=fake_clock)
    hours = [3.0, 5.0, 7.0, 9.0, 12.0]

    readings = await _read_at(sensor, fake_clock, [h * HOUR_S for h in hours])

    lux = [r.values["illuminance_lux"] for r in readings]
    assert lux == sorted(lux)
    assert lux[0] < 10.0 < 1_000.0 < lux[1]


async def test_light_noon_is_lower_in_winter(fake_clock: FakeClock) -> None:
    """Test that the winter sun at 51.5 N gives far less light than summer's."""
    summer = LightConfig(start=MIDSUMMER, cloudiness=0.0, latitude_deg=51.5)
    winter = LightConfig(start=MIDWINTER, cloudiness=0.0, latitude_deg=51.5)

    summer_lux = await _lux_at(summer, fake_clock, 12.0)
    winter_lux = await _lux_at(winter, fake_clock, 12.0)

    assert winter_lux < summer_lux / 2


async def test_light_overcast_lets_a_fifth_through(fake_clock: FakeClock) -> None:
    """Test that a full overcast dims noon to about a fifth of clear sky."""
    clear = LightConfig(start=MIDSUMMER, cloudiness=0.0)
    overcast = LightConfig(start=MIDSUMMER, cloudiness=1.0)

    clear_lux = await _lux_at(clear, fake_clock, 12.0)
    overcast_lux = await _lux_at(overcast, fake_clock, 12.0)

    assert overcast_lux == pytest.approx(clear_lux * 0.2, rel=0.05)


async def test_light_clouds_vary_through_the_day(fake_clock: FakeClock) -> None:
    """Test that partial cloud makes the light fluctuate around clear sky."""
    config = LightConfig(start=MIDSUMMER + dt.timedelta(hours=11), cloudiness=0.5)
    sensor = SimulatedLight(config, clock=fake_clock)

    readings = await _read_at(sensor, fake_clock, [m * 60.0 for m in range(0, 120, 5)])

    lux = [r.values["illuminance_lux"] for r in readings]
    assert max(lux) > 1.3 * min(lux)


async def test_light_indoor_lamp_follows_its_hours(fake_clock: FakeClock) -> None:
    """Test that a lamp in a windowless room lights only between its hours."""
    config = LightConfig(
        start=MIDSUMMER, daylight_factor=0.0, lamp_lux=300.0, lamp_off_hour=22.0
    )
    sensor = SimulatedLight(config, clock=fake_clock)

    early, evening, late = await _read_at(
        sensor, fake_clock, [6 * HOUR_S, 20 * HOUR_S, 23 * HOUR_S]
    )

    assert early.values["illuminance_lux"] == 0.0
    assert evening.values["illuminance_lux"] == pytest.approx(300.0, rel=0.03)
    assert late.values["illuminance_lux"] == 0.0


async def test_light_lamp_hours_may_span_midnight(fake_clock: FakeClock) -> None:
    """Test that a lamp on at 22:00 and off at 06:00 is lit at 02:00."""
    config = LightConfig(
        start=MIDSUMMER,
        daylight_factor=0.0,
        lamp_lux=50.0,
        lamp_on_hour=22.0,
        lamp_off_hour=6.0,
    )
    sensor = SimulatedLight(config, clock=fake_clock)

    night, day = await _read_at(sensor, fake_clock, [2 * HOUR_S, 12 * HOUR_S])

    assert night.values["illuminance_lux"] == pytest.approx(50.0, rel=0.03)
    assert day.values["illuminance_lux"] == 0.0


async def test_light_indoors_sees_a_share_of_daylight(fake_clock: FakeClock) -> None:
    """Test that a daylight factor of 0.03 scales noon light to a room's level."""
    outdoors = LightConfig(start=MIDSUMMER, cloudiness=0.0)
    indoors = LightConfig(start=MIDSUMMER, cloudiness=0.0, daylight_factor=0.03)

    outdoor_lux = await _lux_at(outdoors, fake_clock, 12.0)
    indoor_lux = await _lux_at(indoors, fake_clock, 12.0)

    assert indoor_lux == pytest.approx(outdoor_lux * 0.03, rel=0.05)


async def test_temperature_peaks_in_the_afternoon(fake_clock: FakeClock) -> None:
    """Test that 15:00 is warmer than 03:00 by about twice the swing."""
    config = TemperatureConfig(start=MIDSUMMER, mean_c=20.0, swing_c=4.0)
    sensor = SimulatedTemperature(config, clock=fake_clock)

    night, afternoon = await _read_at(sensor, fake_clock, [3 * HOUR_S, 15 * HOUR_S])

    rise_c = afternoon.values["temperature_c"] - night.values["temperature_c"]
    assert 6.0 < rise_c < 10.0


async def test_humidity_falls_as_the_air_warms(fake_clock: FakeClock) -> None:
    """Test that humidity and temperature are strongly anti-correlated."""
    sensor = SimulatedTemperature(TemperatureConfig(start=MIDSUMMER), clock=fake_clock)

    readings = await _read_at(sensor, fake_clock, [h * 900.0 for h in range(96)])

    temperature = [r.values["temperature_c"] for r in readings]
    humidity = [r.values["humidity_pct"] for r in readings]
    assert statistics.correlation(temperature, humidity) < -0.8


async def test_temperature_and_humidity_stay_plausible(fake_clock: FakeClock) -> None:
    """Test a simulated week stays within the swing, noise and 0..100 %."""
    config = TemperatureConfig(start=MIDSUMMER, mean_c=21.0, swing_c=3.0, noise_c=0.5)
    sensor = SimulatedTemperature(config, clock=fake_clock)

    readings = await _read_at(sensor, fake_clock, [h * 1800.0 for h in range(336)])

    for reading in readings:
        assert 17.5 <= reading.values["temperature_c"] <= 24.5
        assert 30.0 <= reading.values["humidity_pct"] <= 75.0


async def test_moisture_dries_toward_its_floor(fake_clock: FakeClock) -> None:
    """Test that unwatered soil loses 1/e of its excess per time constant."""
    config = MoistureConfig(
        initial_pct=60.0,
        floor_pct=10.0,
        drying_tau_h=72.0,
        watering="none",
        noise_pct=0.0,
    )
    sensor = SimulatedMoisture(config, clock=fake_clock)

    start, tau, month = await _read_at(sensor, fake_clock, [0.0, 3 * DAY_S, 30 * DAY_S])

    assert start.values["moisture_pct"] == 60.0
    assert tau.values["moisture_pct"] == pytest.approx(
        10.0 + 50.0 / 2.718281828, abs=0.01
    )
    assert month.values["moisture_pct"] == pytest.approx(10.0, abs=0.01)


async def test_moisture_jumps_when_watered(fake_clock: FakeClock) -> None:
    """Test that a periodic watering adds its amount at each interval."""
    config = MoistureConfig(
        watering="periodic",
        watering_interval_h=24.0,
        watering_pct=30.0,
        noise_pct=0.0,
    )
    sensor = SimulatedMoisture(config, clock=fake_clock)

    before, after = await _read_at(sensor, fake_clock, [DAY_S - 1.0, DAY_S])

    jump = after.values["moisture_pct"] - before.values["moisture_pct"]
    assert jump == pytest.approx(30.0, abs=0.05)


async def test_moisture_is_capped_at_100(fake_clock: FakeClock) -> None:
    """Test that watering wet soil tops out at 100 % rather than beyond."""
    config = MoistureConfig(
        initial_pct=95.0,
        watering="periodic",
        watering_interval_h=1.0,
        watering_pct=50.0,
        noise_pct=2.0,
    )
    sensor = SimulatedMoisture(config, clock=fake_clock)

    readings = await _read_at(sensor, fake_clock, [m * 600.0 for m in range(1, 60)])

    values = [r.values["moisture_pct"] for r in readings]
    assert max(values) == 100.0
    assert min(values) > 80.0


async def test_moisture_random_watering_is_jittered(fake_clock: FakeClock) -> None:
    """Test that random waterings fall 0.5 to 1.5 intervals apart, not evenly."""
    config = MoistureConfig(watering="random", watering_interval_h=24.0, noise_pct=0.0)
    sensor = SimulatedMoisture(config, clock=fake_clock)

    readings = await _read_at(sensor, fake_clock, [h * HOUR_S for h in range(24 * 30)])

    values = [r.values["moisture_pct"] for r in readings]
    jumps = [h for h in range(1, len(values)) if values[h] > values[h - 1] + 5.0]
    gaps = [b - a for a, b in itertools.pairwise(jumps)]
    assert len(jumps) >= 20
    assert all(11 <= gap <= 37 for gap in gaps)
    assert len(set(gaps)) > 3


async def test_moisture_stays_within_0_and_100(fake_clock: FakeClock) -> None:
    """Test a simulated quarter year of default soil stays plausible."""
    sensor = SimulatedMoisture(MoistureConfig(seed=7), clock=fake_clock)

    readings = await _read_at(sensor, fake_clock, [h * 6 * HOUR_S for h in range(360)])

    values = [r.values["moisture_pct"] for r in readings]
    assert 9.0 <= min(values) < max(values) <= 100.0


@pytest.mark.parametrize(
    "make",
    [
        lambda clock: SimulatedLight(LightConfig(seed=3), clock=clock),
        lambda clock: SimulatedTemperature(TemperatureConfig(seed=3), clock=clock),
        lambda clock: SimulatedMoisture(MoistureConfig(seed=3), clock=clock),
    ],
    ids=["light", "temperature", "moisture"],
)
async def test_same_seed_gives_same_values_however_often_read(
    make: Callable[[FakeClock], _Simulated],
) -> None:
    """Test that values depend on the seed and time, not on the read pattern."""
    often, seldom = FakeClock(), FakeClock()
    times_s = [h * 1234.5 for h in range(1, 200)]

    every = await _read_at(make(often), often, times_s)
    last = await _read_at(make(seldom), seldom, times_s[-1:])

    assert every[-1].values == last[0].values


@pytest.mark.parametrize(
    "make",
    [
        lambda seed, clock: SimulatedLight(LightConfig(seed=seed), clock=clock),
        lambda seed, clock: SimulatedTemperature(
            TemperatureConfig(seed=seed), clock=clock
        ),
        lambda seed, clock: SimulatedMoisture(MoistureConfig(seed=seed), clock=clock),
    ],
    ids=["light", "temperature", "moisture"],
)
async def test_different_seeds_give_different_values(
    make: Callable[[int, FakeClock], _Simulated],
) -> None:
    """Test that changing the seed changes the noise."""
    times_s = [h * 1800.0 for h in range(1, 100)]
    first_clock, second_clock = FakeClock(), FakeClock()

    first = await _read_at(make(1, first_clock), first_clock, times_s)
    second = await _read_at(make(2, second_clock), second_clock, times_s)

    assert [r.values for r in first] != [r.values for r in second]


async def test_speed_scales_simulated_time(fake_clock: FakeClock) -> None:
    """Test that one second at speed 3600 reads like an hour at speed 1."""
    fast_clock, slow_clock = FakeClock(), FakeClock()
    fast = SimulatedTemperature(TemperatureConfig(speed=3600.0), clock=fast_clock)
    slow = SimulatedTemperature(TemperatureConfig(speed=1.0), clock=slow_clock)

    fast_reading = (await _read_at(fast, fast_clock, [1.0]))[0]
    slow_reading = (await _read_at(slow, slow_clock, [HOUR_S]))[0]

    assert fast_reading.values == slow_reading.values
    assert fast.simulated_time() == slow.simulated_time()


async def test_start_defaults_to_the_clock_now(fake_clock: FakeClock) -> None:
    """Test that simulated time begins at the clock's now when opened."""
    fake_clock.advance(90.0)
    sensor = SimulatedLight(LightConfig(speed=60.0), clock=fake_clock)

    await sensor.open()
    fake_clock.advance(10.0)

    assert sensor.simulated_time() == dt.datetime(2024, 6, 21, 0, 11, 30, tzinfo=dt.UTC)


async def test_reading_is_stamped_with_the_clock_now(fake_clock: FakeClock) -> None:
    """Test that taken_at is the clock's time, not the simulated time."""
    config = MoistureConfig(start=MIDWINTER, speed=1000.0)
    sensor = SimulatedMoisture(config, clock=fake_clock)

    reading = (await _read_at(sensor, fake_clock, [5.0]))[0]

    assert reading.taken_at == dt.datetime(2024, 6, 21, 0, 0, 5, tzinfo=dt.UTC)


async def test_reopening_restarts_the_simulation(fake_clock: FakeClock) -> None:
    """Test that open after close starts again from start and initial_pct."""
    config = MoistureConfig(start=MIDSUMMER, speed=3600.0, noise_pct=0.0)
    sensor = SimulatedMoisture(config, clock=fake_clock)
    await sensor.open()
    fake_clock.advance(500.0)
    await sensor.read()
    await sensor.close()
    await sensor.close()

    await sensor.open()
    reading = await sensor.read()

    assert reading.values == {"moisture_pct": 60.0}
    assert sensor.simulated_time() == MIDSUMMER


async def test_read_before_open_raises(fake_clock: FakeClock) -> None:
    """Test that reading an unopened sensor names the driver and the fix."""
    sensor = SimulatedTemperature(TemperatureConfig(), clock=fake_clock)

    with pytest.raises(RuntimeError) as caught:
        await sensor.read()

    assert str(caught.value) == (
        "sensor 'simulated-temperature' is not open; await open() first"
    )


def test_quantities_name_their_units(fake_clock: FakeClock) -> None:
    """Test the quantity names each simulated sensor reports."""
    light = SimulatedLight(LightConfig(), clock=fake_clock)
    air = SimulatedTemperature(TemperatureConfig(), clock=fake_clock)
    soil = SimulatedMoisture(MoistureConfig(), clock=fake_clock)

    assert light.quantities == ("illuminance_lux",)
    assert air.quantities == ("temperature_c", "humidity_pct")
    assert soil.quantities == ("moisture_pct",)
