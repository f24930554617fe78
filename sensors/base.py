"""The sensor interface every driver implements, and the errors it raises."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agent.errors import SensorError, SensorMisconfigured, SensorUnavailable

__all__ = [
    "Clock",
    "Reading",
    "Sensor",
    "SensorError",
    "SensorFactory",
    "SensorMisconfigured",
    "SensorUnavailable",
    "SystemClock",
]


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading of a sensor: named quantities taken together.

    Quantity names carry their unit (``temperature_c``, ``humidity_pct``,
    ``illuminance_lux``, ``moisture_pct``).
    """

    values: Mapping[str, float]
    taken_at: dt.datetime


class Clock(Protocol):
    """Where drivers get time from, so tests can move it by hand."""

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes backwards."""
        ...

    def now(self) -> dt.datetime:
        """Return the current UTC time, timezone-aware."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread; drivers call it only from worker threads."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        import time

        return time.monotonic()

    def now(self) -> dt.datetime:
        """Return the current UTC time."""
        return dt.datetime.now(dt.UTC)

    def sleep(self, seconds: float) -> None:
        """Return :func:`time.sleep`."""
        import time

        time.sleep(seconds)


class Sensor(Protocol):
    """A source of readings for one module.

    ``open`` may raise :class:`SensorMisconfigured` (fix the config) or
    :class:`SensorUnavailable` (try again later). ``read`` never blocks the
    event loop; a failed read raises and publishes nothing.
    """

    @property
    def quantities(self) -> tuple[str, ...]:
        """Names of the quantities each reading carries."""
        ...

    async def open(self) -> None:
        """Acquire the bus, pin or file the sensor needs."""
        ...

    async def read(self) -> Reading:
        """Take one reading."""
        ...

    async def close(self) -> None:
        """Release what ``open`` acquired; safe to call twice."""
        ...


SensorFactory = Callable[..., Sensor]
"""Builds a sensor from its config table: ``factory(options, *, clock=...)``."""

SensorOptions = Mapping[str, Any]
