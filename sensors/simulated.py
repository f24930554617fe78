"""Simulated sensors: plausible physics, deterministic for a seed.

Each sensor turns the injected clock into a simulated time: ``start`` plus
the seconds since ``open()`` times ``speed``. Its value is a pure function
of the seed and that time, so two sensors with the same seed agree however
often they are read. The wall-clock hours of the simulated time are taken
as the local time of the simulated place (give ``start`` a UTC offset to
move the place); noon is taken as solar noon, which ignores longitude
within the time zone and the equation of time (together under an hour).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from sensors.base import Clock, Reading, Sensor
from sensors.options import parse_options, require

__all__ = [
    "LightConfig",
    "MoistureConfig",
    "SimulatedLight",
    "SimulatedMoisture",
    "SimulatedTemperature",
    "TemperatureConfig",
    "create_light",
    "create_moisture",
    "create_temperature",
]

# Daylight. Shapes are textbook approximations; magnitudes match commonly
# quoted values: about 100 klx in clear midsummer sun, about 400 lux at
# sunset, under 1 lux once the sun is 6 degrees down (civil twilight ends).
SOLAR_ILLUMINANCE_LUX = 128_000.0  # above the atmosphere, normal to the sun
CLEAR_SKY_OPTICAL_DEPTH = 0.21  # Beer-Lambert, air mass ~ 1 / sin(elevation)
SKY_DIFFUSE_LUX = 15_000.0  # scattered skylight with the sun overhead
SUNSET_LUX = 400.0
TWILIGHT_SCALE_DEG = 1.2  # 400 lux * exp(-6 / 1.2) ~ 3 lux at -6 degrees
OVERCAST_ATTENUATION = 0.8  # a full overcast lets about a fifth through
EARTH_TILT_DEG = 23.44

# Air. Magnus formula coefficients over water (Sonntag 1990, as the WMO
# guide gives them), good to 0.1 % RH between -45 and 60 degC.
MAGNUS_A = 17.62
MAGNUS_B_C = 243.12
WARMEST_HOUR = 15.0  # air temperature peaks mid-afternoon
DEW_POINT_DRIFT_C = 1.0  # weather moves the dew point slowly

HOUR_S = 3600.0
DAY_H = 24.0


@dataclass(frozen=True, slots=True, kw_only=True)
class _SimulationConfig:
    """Options every simulated sensor shares.

    Attributes:
        seed: Fixes the noise and random events; same seed, same values.
        speed: Simulated seconds per second of the clock.
        start: Simulated time at ``open()``; the clock's now by default.
    """

    seed: int = 0
    speed: float = 1.0
    start: dt.datetime | None = None

    def __post_init__(self) -> None:
        require(self.speed > 0, "speed", self.speed, "above 0", "e.g. speed = 60")


@dataclass(frozen=True, slots=True, kw_only=True)
class LightConfig(_SimulationConfig):
    """Options of :class:`SimulatedLight`.

    Attributes:
        latitude_deg: Latitude of the place, -90 to 90 (north positive).
        cloudiness: Mean cloud cover, 0 (always clear) to 1 (overcast).
        daylight_factor: Share of outdoor daylight reaching the sensor:
            1 outdoors, about 0.02 to 0.05 inside a room.
        lamp_lux: Illuminance a lamp adds while it is on; 0 for no lamp.
        lamp_on_hour: Local hour the lamp switches on (0 to 24).
        lamp_off_hour: Local hour it switches off; may be before on-hour to
            span midnight.
    """

    latitude_deg: float = 45.0
    cloudiness: float = 0.4
    daylight_factor: float = 1.0
    lamp_lux: float = 0.0
    lamp_on_hour: float = 7.0
    lamp_off_hour: float = 22.0

    def __post_init__(self) -> None:
        super(LightConfig, self).__post_init__()
        _in_range("latitude_deg", self.latitude_deg, -90.0, 90.0)
        _in_range("cloudiness", self.cloudiness, 0.0, 1.0)
        _in_range("daylight_factor", self.daylight_factor, 0.0, 1.0)
        require(
            self.lamp_lux >= 0,
            "lamp_lux",
            self.lamp_lux,
            "0 or more",
            "e.g. lamp_lux = 300",
        )
        _in_range("lamp_on_hour", self.lamp_on_hour, 0.0, DAY_H)
        _in_range("lamp_off_hour", self.lamp_off_hour, 0.0, DAY_H)


@dataclass(frozen=True, slots=True, kw_only=True)
class TemperatureConfig(_SimulationConfig):
    """Options of :class:`SimulatedTemperature`.

    Attributes:
        mean_c: Daily mean air temperature.
        swing_c: Half the day's range: warmest is ``mean_c + swing_c``.
        dew_point_c: Mean dew point; sets humidity (10 degC gives about
            50 % at 21 degC).
        noise_c: Size of slow weather drift and sensor jitter.
    """

    mean_c: float = 21.0
    swing_c: float = 3.0
    dew_point_c: float = 10.0
    noise_c: float = 0.5

    def __post_init__(self) -> None:
        super(TemperatureConfig, self).__post_init__()
        _in_range("mean_c", self.mean_c, -40.0, 60.0)
        _in_range("swing_c", self.swing_c, 0.0, 20.0)
        _in_range("dew_point_c", self.dew_point_c, -40.0, 40.0)
        _in_range("noise_c", self.noise_c, 0.0, 5.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class MoistureConfig(_SimulationConfig):
    """Options of :class:`SimulatedMoisture`.

    Attributes:
        initial_pct: Moisture at ``start``.
        floor_pct: Level the soil dries toward (water it never loses).
        drying_tau_h: Time for the excess over the floor to fall by 1/e.
        watering: ``"random"`` (intervals jittered by +/-50 %),
            ``"periodic"`` or ``"none"``.
        watering_interval_h: Hours between waterings (mean if random).
        watering_pct: Moisture one watering adds (capped at 100).
        noise_pct: Size of the probe's jitter.
    """

    initial_pct: float = 60.0
    floor_pct: float = 10.0
    drying_tau_h: float = 72.0
    watering: str = "random"
    watering_interval_h: float = 72.0
    watering_pct: float = 40.0
    noise_pct: float = 0.5

    def __post_init__(self) -> None:
        super(MoistureConfig, self).__post_init__()
        _in_range("initial_pct", self.initial_pct, 0.0, 100.0)
        _in_range("floor_pct", self.floor_pct, 0.0, 100.0)
        require(
            self.drying_tau_h > 0,
            "drying_tau_h",
            self.drying_tau_h,
            "above 0",
            "e.g. drying_tau_h = 72",
        )
        require(
            self.watering in _WATERING,
            "watering",
            self.watering,
            "one of " + ", ".join(_WATERING),
            'e.g. watering = "periodic"',
        )
        require(
            self.watering_interval_h > 0,
            "watering_interval_h",
            self.watering_interval_h,
            "above 0",
            "e.g. watering_interval_h = 72",
        )
        _in_range("watering_pct", self.watering_pct, 0.0, 100.0)
        _in_range("noise_pct", self.noise_pct, 0.0, 10.0)


class _SimulatedSensor:
    """Turns the clock into simulated time; subclasses model one quantity."""

    driver: ClassVar[str]

    def __init__(self, config: _SimulationConfig, *, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._opened_at: float | None = None
        self._start = config.start or clock.now()

    async def open(self) -> None:
        """Start simulated time at ``start`` (or the clock's now)."""
        self._opened_at = self._clock.monotonic()
        self._start = self._config.start or self._clock.now()

    async def close(self) -> None:
        """Stop the simulation; ``open()`` starts it again from ``start``."""
        self._opened_at = None

    def simulated_time(self) -> dt.datetime:
        """Return the simulated time that a reading taken now would show.

        Raises:
            RuntimeError: The sensor is not open.
        """
        return self._when(self._elapsed_s())

    def _elapsed_s(self) -> float:
        if self._opened_at is None:
            raise RuntimeError(
                f"sensor {self.driver!r} is not open; await open() first"
            )
        return (self._clock.monotonic() - self._opened_at) * self._config.speed

    def _when(self, elapsed_s: float) -> dt.datetime:
        return self._start + dt.timedelta(seconds=elapsed_s)

    def _noise(self, stream: str, elapsed_s: float, period_s: float) -> float:
        return _smooth_noise(self._config.seed, stream, elapsed_s / period_s)

    def _reading(self, **values: float) -> Reading:
        return Reading(values=values, taken_at=self._clock.now())


class SimulatedLight(_SimulatedSensor):
    """Illuminance from the sun's height, passing clouds and a lamp.

    Args:
        config: The model's options.
        clock: Source of time.
    """

    driver = "simulated-light"

    def __init__(self, config: LightConfig, *, clock: Clock) -> None:
        super().__init__(config, clock=clock)
        self._light = config

    @property
    def quantities(self) -> tuple[str, ...]:
        """Return ``("illuminance_lux",)``."""
        return ("illuminance_lux",)

    async def read(self) -> Reading:
        """Return the illuminance at the current simulated time."""
        elapsed_s = self._elapsed_s()
        when = self._when(elapsed_s)
        daylight = _clear_sky_lux(_solar_elevation_deg(when, self._light.latitude_deg))
        daylight *= 1.0 - OVERCAST_ATTENUATION * self._cloud_cover(elapsed_s)
        lux = daylight * self._light.daylight_factor + self._lamp_lux(when)
        # Sensor jitter of about 2 %, well inside a BH1750's +/-20 % accuracy.
        lux *= 1.0 + 0.02 * self._noise("light.jitter", elapsed_s, 20.0)
        return self._reading(illuminance_lux=round(max(lux, 0.0), 1))

    def _cloud_cover(self, elapsed_s: float) -> float:
        mean = self._light.cloudiness
        spread = min(mean, 1.0 - mean)
        weather = self._noise("light.weather", elapsed_s, 3 * HOUR_S)
        passing = self._noise("light.clouds", elapsed_s, 600.0)
        return _clamp(mean + spread * (0.6 * weather + 0.4 * passing), 0.0, 1.0)

    def _lamp_lux(self, when: dt.datetime) -> float:
        on, off = self._light.lamp_on_hour, self._light.lamp_off_hour
        hour = _local_hour(when)
        lit = on <= hour < off if on <= off else hour >= on or hour < off
        return self._light.lamp_lux if lit else 0.0


class SimulatedTemperature(_SimulatedSensor):
    """Air temperature with a daily swing, and the humidity that follows.

    Humidity comes from a slowly drifting dew point through the Magnus
    formula, so it falls as the air warms, as it does indoors and out.

    Args:
        config: The model's options.
        clock: Source of time.
    """

    driver = "simulated-temperature"

    def __init__(self, config: TemperatureConfig, *, clock: Clock) -> None:
        super().__init__(config, clock=clock)
        self._air = config

    @property
    def quantities(self) -> tuple[str, ...]:
        """Return ``("temperature_c", "humidity_pct")``."""
        return ("temperature_c", "humidity_pct")

    async def read(self) -> Reading:
        """Return temperature and relative humidity at the simulated time."""
        elapsed_s = self._elapsed_s()
        hour = _local_hour(self._when(elapsed_s))
        daily = math.cos(2 * math.pi * (hour - WARMEST_HOUR) / DAY_H)
        drift = 0.7 * self._noise("air.drift", elapsed_s, 2 * HOUR_S)
        jitter = 0.3 * self._noise("air.jitter", elapsed_s, 60.0)
        temperature_c = (
            self._air.mean_c
            + self._air.swing_c * daily
            + self._air.noise_c * (drift + jitter)
        )

        dew_drift = self._noise("air.dew", elapsed_s, 6 * HOUR_S)
        dew_point_c = min(
            self._air.dew_point_c + DEW_POINT_DRIFT_C * dew_drift, temperature_c
        )
        humidity_pct = _clamp(
            _relative_humidity_pct(temperature_c, dew_point_c), 0, 100
        )
        return self._reading(
            temperature_c=round(temperature_c, 2),
            humidity_pct=round(humidity_pct, 2),
        )


class SimulatedMoisture(_SimulatedSensor):
    """Soil moisture that decays toward a floor and jumps when watered.

    Args:
        config: The model's options.
        clock: Source of time.
    """

    driver = "simulated-moisture"

    def __init__(self, config: MoistureConfig, *, clock: Clock) -> None:
        super().__init__(config, clock=clock)
        self._soil = config
        self._reset()

    @property
    def quantities(self) -> tuple[str, ...]:
        """Return ``("moisture_pct",)``."""
        return ("moisture_pct",)

    async def open(self) -> None:
        """Start from ``initial_pct`` at ``start``, before any watering."""
        await super().open()
        self._reset()

    async def read(self) -> Reading:
        """Return the soil moisture at the current simulated time."""
        elapsed_s = self._elapsed_s()
        self._water_until(elapsed_s)
        level = self._dried(self._level_pct, elapsed_s - self._level_at_s)
        level += self._soil.noise_pct * self._noise("soil.jitter", elapsed_s, 30.0)
        return self._reading(moisture_pct=round(_clamp(level, 0.0, 100.0), 2))

    def _reset(self) -> None:
        # The schedule is drawn from its own generator, so it depends on the
        # seed alone, never on when or how often the sensor is read.
        self._schedule = random.Random(_digest(self._soil.seed, "soil.watering"))
        self._level_pct = self._soil.initial_pct
        self._level_at_s = 0.0
        self._next_watering_s = self._watering_gap_s()

    def _water_until(self, elapsed_s: float) -> None:
        while self._next_watering_s <= elapsed_s:
            gap_s = self._next_watering_s - self._level_at_s
            level = self._dried(self._level_pct, gap_s) + self._soil.watering_pct
            self._level_pct = min(level, 100.0)
            self._level_at_s = self._next_watering_s
            self._next_watering_s += self._watering_gap_s()

    def _watering_gap_s(self) -> float:
        interval_s = self._soil.watering_interval_h * HOUR_S
        if self._soil.watering == "none":
            return math.inf
        if self._soil.watering == "random":
            return interval_s * self._schedule.uniform(0.5, 1.5)
        return interval_s

    def _dried(self, level_pct: float, after_s: float) -> float:
        floor = min(self._soil.floor_pct, level_pct)
        decay = math.exp(-max(after_s, 0.0) / (self._soil.drying_tau_h * HOUR_S))
        return floor + (level_pct - floor) * decay


def create_light(options: Mapping[str, object], *, clock: Clock) -> Sensor:
    """Build a :class:`SimulatedLight` from its options table."""
    return SimulatedLight(
        parse_options(LightConfig, options, driver=SimulatedLight.driver), clock=clock
    )


def create_temperature(options: Mapping[str, object], *, clock: Clock) -> Sensor:
    """Build a :class:`SimulatedTemperature` from its options table."""
    config = parse_options(
        TemperatureConfig, options, driver=SimulatedTemperature.driver
    )
    return SimulatedTemperature(config, clock=clock)


def create_moisture(options: Mapping[str, object], *, clock: Clock) -> Sensor:
    """Build a :class:`SimulatedMoisture` from its options table."""
    config = parse_options(MoistureConfig, options, driver=SimulatedMoisture.driver)
    return SimulatedMoisture(config, clock=clock)


_WATERING = ("random", "periodic", "none")


def _in_range(name: str, value: float, low: float, high: float) -> None:
    require(
        low <= value <= high,
        name,
        value,
        f"between {low:g} and {high:g}",
        f"pick a value in that range, e.g. {name} = {(low + high) / 2:g}",
    )


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _local_hour(when: dt.datetime) -> float:
    return when.hour + when.minute / 60 + when.second / HOUR_S


def _solar_elevation_deg(when: dt.datetime, latitude_deg: float) -> float:
    # Declination by Cooper's approximation (within about 1 degree), and the
    # hour angle from local time taken as solar time.
    day = when.timetuple().tm_yday
    declination = -EARTH_TILT_DEG * math.cos(2 * math.pi * (day + 10) / 365)
    hour_angle = 15.0 * (_local_hour(when) - 12.0)
    lat, dec, ha = map(math.radians, (latitude_deg, declination, hour_angle))
    sin_elevation = math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(
        dec
    ) * math.cos(ha)
    return math.degrees(math.asin(_clamp(sin_elevation, -1.0, 1.0)))


def _clear_sky_lux(elevation_deg: float) -> float:
    twilight = SUNSET_LUX * math.exp(min(elevation_deg, 0.0) / TWILIGHT_SCALE_DEG)
    if elevation_deg <= 0:
        return twilight
    height = math.sin(math.radians(elevation_deg))
    direct = (
        SOLAR_ILLUMINANCE_LUX * height * math.exp(-CLEAR_SKY_OPTICAL_DEPTH / height)
    )
    return twilight + direct + SKY_DIFFUSE_LUX * math.sqrt(height)


def _relative_humidity_pct(temperature_c: float, dew_point_c: float) -> float:
    def magnus(t_c: float) -> float:
        return MAGNUS_A * t_c / (MAGNUS_B_C + t_c)

    return 100.0 * math.exp(magnus(dew_point_c) - magnus(temperature_c))


def _digest(seed: int, label: str) -> int:
    # blake2b rather than hash(): str hashes change from run to run.
    data = f"{seed}/{label}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _unit(seed: int, stream: str, knot: int) -> float:
    return _digest(seed, f"{stream}/{knot}") / 2.0**63 - 1.0


def _smooth_noise(seed: int, stream: str, x: float) -> float:
    """Return value noise in [-1, 1], smooth in ``x``, fixed by the seed."""
    knot = math.floor(x)
    frac = x - knot
    weight = frac * frac * (3.0 - 2.0 * frac)  # smoothstep: no kinks at knots
    before, after = _unit(seed, stream, knot), _unit(seed, stream, knot + 1)
    return before + (after - before) * weight
