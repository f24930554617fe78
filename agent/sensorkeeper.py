"""One module's sensor: opening, reading with a deadline, health, restarts.

A read that fails or hangs never raises out of here: it is counted, and
after ``DEGRADED_AFTER`` failures in a row the module reports itself
degraded (state, last error, error rate, last good reading) and retries
with a growing delay until a read succeeds, when it reports itself healthy
again. A sensor missing at start-up is just a run of failed opens.

Sensor settings a desired property may change (``samples_per_reading``,
calibration, resolution) are applied by building a new sensor with the
config's driver options plus the overrides; the driver's own option checks
decide what is allowed.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from agent.errors import SensorError, SensorMisconfigured
from sensors.base import Reading, Sensor

_LOGGER = logging.getLogger(__name__)

READ_TIMEOUT_S = 10.0
# One bad read (a DHT checksum) is routine; a run of them is an outage.
DEGRADED_AFTER = 3
RETRY_CAP_S = 300.0
ERROR_WINDOW = 20

SensorBuilder = Callable[[Mapping[str, Any]], Sensor]
Report = Callable[[dict[str, Any]], None]


class SensorKeeper:
    """Owns a module's sensor and says how healthy it is.

    Args:
        module_id: For log lines.
        driver: The driver name, reported with the state.
        sensor: The sensor built from the config, not yet opened.
        build: Builds a sensor from driver options (for new settings).
        options: The driver options from the config file.
        report: Receives the reported ``sensor`` property when it changes.
        now: UTC time source for the last good reading.
    """

    def __init__(
        self,
        module_id: str,
        driver: str,
        sensor: Sensor,
        *,
        build: SensorBuilder | None,
        options: Mapping[str, Any],
        report: Report,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._name = module_id
        self._driver = driver
        self._sensor = sensor
        self._build = build
        self._options = dict(options)
        self._overrides: dict[str, Any] = {}
        self._report = report
        self._now = now
        self._lock = asyncio.Lock()
        self._opened = False
        self._failures = 0
        self._outcomes: collections.deque[bool] = collections.deque(maxlen=ERROR_WINDOW)
        self._last_error = ""
        self._last_good: dt.datetime | None = None
        self.state = ""
        """``ok``, ``degraded``, ``disabled``, or empty before the first read."""

    def retry_delay_s(self, interval_s: float) -> float:
        """Return the wait before the next read, longer while failing."""
        extra = self._failures - DEGRADED_AFTER
        if extra < 0:
            return interval_s
        backoff_s = interval_s * float(2 ** min(extra + 1, 16))
        return min(backoff_s, max(interval_s, RETRY_CAP_S))

    def check(self, overrides: Mapping[str, Any]) -> None:
        """Check that the driver takes these settings, without touching it.

        Raises:
            SensorMisconfigured: The driver refuses an option or a value.
        """
        if self._build is None:
            raise SensorMisconfigured("this sensor cannot be reconfigured")
        self._build({**self._options, **overrides})

    async def apply(self, overrides: Mapping[str, Any]) -> None:
        """Use new driver settings: a new sensor replaces the old one."""
        if dict(overrides) == self._overrides or self._build is None:
            return
        replacement = self._build({**self._options, **overrides})
        async with self._lock:
            await self._close_quietly()
            self._sensor = replacement
            self._overrides = dict(overrides)
        _LOGGER.info(
            "sensor settings applied module=%s settings=%s",
            self._name,
            ",".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "-",
        )

    async def sample(self) -> Reading | None:
        """Take a reading for telemetry; ``None`` if the sensor failed."""
        try:
            reading = await self.read()
        except (SensorError, TimeoutError) as err:
            self._failed(str(err) or f"no reading within {READ_TIMEOUT_S:g}s")
            return None
        self._succeeded()
        return reading

    async def read(self) -> Reading:
        """Open the sensor if needed and take one reading, with a deadline.

        Raises:
            SensorError: The sensor could not be opened or read.
            TimeoutError: No reading within ``READ_TIMEOUT_S``.
        """
        async with asyncio.timeout(READ_TIMEOUT_S), self._lock:
            if not self._opened:
                await self._sensor.open()
                self._opened = True
            return await self._sensor.read()

    async def restart(self) -> None:
        """Close and reopen the sensor (the ``restart_sensor`` method)."""
        async with asyncio.timeout(READ_TIMEOUT_S), self._lock:
            await self._close_quietly()
            await self._sensor.open()
            self._opened = True
        _LOGGER.info("sensor restarted module=%s", self._name)

    def disabled(self) -> None:
        """Note that readings are off (``enabled`` is false)."""
        self._set_state("disabled")

    async def close(self) -> None:
        """Release the sensor."""
        await self._close_quietly()

    async def _close_quietly(self) -> None:
        self._opened = False
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                await self._sensor.close()
        except TimeoutError:
            # A driver stuck in close must not hold up twin sync, which
            # applies new sensor settings on the link task.
            _LOGGER.warning(
                "sensor close got stuck, abandoned module=%s timeout_s=%g",
                self._name,
                READ_TIMEOUT_S,
            )
        except SensorError as err:
            _LOGGER.debug("sensor close failed module=%s error=%s", self._name, err)

    def _failed(self, error: str) -> None:
        self._failures += 1
        self._outcomes.append(False)
        self._last_error = error
        if self._failures == DEGRADED_AFTER:
            _LOGGER.warning(
                "sensor degraded module=%s failures=%d error=%s",
                self._name,
                self._failures,
                error,
            )
        if self._failures >= DEGRADED_AFTER:
            self._set_state("degraded")

    def _succeeded(self) -> None:
        if self.state == "degraded":
            _LOGGER.info(
                "sensor recovered module=%s failures=%d", self._name, self._failures
            )
        self._failures = 0
        self._outcomes.append(True)
        self._last_good = self._now()
        self._set_state("ok")

    def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        self._report({"sensor": self.summary()})

    def summary(self) -> dict[str, Any]:
        """Return the reported ``sensor`` property."""
        failed = self._outcomes.count(False)
        summary: dict[str, Any] = {
            "state": self.state or "starting",
            "driver": self._driver,
            "last_error": self._last_error,
            "error_rate": round(failed / len(self._outcomes), 2)
            if self._outcomes
            else 0,
        }
        if self._last_good is not None:
            summary["last_good"] = self._last_good.isoformat(timespec="seconds")
        return summary
