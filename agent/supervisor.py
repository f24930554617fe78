"""The agent process: one runner per module, each failure contained.

A runner that crashes is logged once with its traceback and started again
after a pause; the other modules never notice.

The agent also tells systemd how it is doing (``agent/notify.py``):
``READY=1`` once every module's runner has started, a one-line ``STATUS=``
whenever a module's state changes, and ``WATCHDOG=1`` at half the watchdog
deadline while it is healthy. The ping is sent by a task on the event loop,
so a stalled loop stops it; a module whose runner stays down longer than
``down_grace_s`` stops it too, and systemd restarts the whole process.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from agent.config import AgentConfig, ModuleConfig
from agent.errors import ConfigError, SensorMisconfigured, StorageError
from agent.notify import Notifier
from agent.outbox import Outbox
from agent.runner import ModuleRunner
from agent.state import StateStore
from sensors.base import Reading, Sensor
from sensors.registry import create_sensor

_LOGGER = logging.getLogger(__name__)

RESTART_DELAY_S = 10.0
# How long a module may be without a live runner (starting, or restarting
# after a crash) before the watchdog pings stop. It covers the restart
# pause plus a link close bounded by call_timeout_s (30 s by default): a
# contained crash must not cost the other modules a process restart, a
# runner that does not come back must.
DOWN_GRACE_S = 60.0
OUTBOX_FILE = "outbox.sqlite3"
# How often the status line is refreshed when no watchdog asks for more.
STATUS_INTERVAL_S = 1.0

SensorBuilder = Callable[[str, Mapping[str, Any]], Sensor]


class Agent:
    """All module runners of one device.

    Every module's sensor is built here, so a wrong driver name or option
    stops the agent at start-up like any other config mistake; a sensor
    that is missing or fails later only degrades its module.

    Args:
        config: The agent config.
        sensor_builder: Builds a module's sensor from driver name and options;
            the sensor registry by default.
        notifier: Where service state goes; from the environment by default.
        monotonic: Clock for the watchdog and down times.
        restart_delay_s: Pause before a crashed runner is started again.
        down_grace_s: How long a module may be without a live runner before
            the watchdog pings stop.

    Raises:
        ConfigError: A module's sensor driver or options are wrong.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        sensor_builder: SensorBuilder | None = None,
        notifier: Notifier | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        restart_delay_s: float = RESTART_DELAY_S,
        down_grace_s: float = DOWN_GRACE_S,
    ) -> None:
        self._config = config
        self._build_sensor = sensor_builder or _from_registry
        self._store = StateStore(config.state_dir)
        self._store.claim()
        self._notifier = notifier if notifier is not None else Notifier()
        self._monotonic = monotonic
        self._restart_delay_s = restart_delay_s
        self._down_grace_s = down_grace_s
        self._runners: dict[str, ModuleRunner | None] = dict.fromkeys(config.modules)
        self._down_since: dict[str, float] = {}
        self._withheld: tuple[str, ...] = ()
        self._first_sensors = {
            module.module_id: self._checked_sensor(module)
            for module in config.modules.values()
        }

    async def run(self) -> None:
        """Run every module until cancelled."""
        _LOGGER.info(
            "agent starting device=%s hub=%s modules=%s",
            self._config.device_id,
            self._config.hub_hostname,
            ",".join(self._config.modules),
        )
        started_at = self._monotonic()
        self._down_since = dict.fromkeys(self._config.modules, started_at)
        settings = self._config.outbox
        outbox = await asyncio.to_thread(
            Outbox,
            self._config.state_dir / OUTBOX_FILE,
            device_id=self._config.device_id,
            max_rows=settings.max_rows,
            max_age_s=settings.max_age_s,
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                for module in self._config.modules.values():
                    tasks.create_task(
                        self._supervise(module, outbox),
                        name=f"{module.module_id}.supervisor",
                    )
                tasks.create_task(self._sync_outbox(outbox), name="agent.outbox")
                if self._notifier.enabled:
                    tasks.create_task(self._tell_service_manager(), name="agent.notify")
        finally:
            self.stopping()
            # Every runner has ended here: nothing writes to the outbox any
            # more, and closing it forces the last readings to the card.
            await asyncio.to_thread(outbox.close)
            self._store.release()

    def stopping(self) -> None:
        """Tell the service manager that shutdown has begun (once)."""
        self._notifier.stopping()

    def module_states(self) -> dict[str, str]:
        """Return each module's state word, by module id."""
        states = {}
        for name, runner in self._runners.items():
            if runner is None or not runner.started.is_set():
                states[name] = "starting"
            elif not runner.alive:
                states[name] = "restarting"
            else:
                states[name] = runner.status
        return states

    def status_line(self) -> str:
        """Return the one-line summary, e.g. ``2 modules: light connected, ...``."""
        states = self.module_states()
        parts = ", ".join(f"{name} {state}" for name, state in sorted(states.items()))
        noun = "module" if len(states) == 1 else "modules"
        return f"{len(states)} {noun}: {parts}"

    def unhealthy_modules(self) -> tuple[str, ...]:
        """Return the modules without a live runner for too long."""
        now = self._monotonic()
        for name, runner in self._runners.items():
            if runner is not None and runner.alive:
                self._down_since.pop(name, None)
            else:
                self._down_since.setdefault(name, now)
        return tuple(
            sorted(
                name
                for name, since in self._down_since.items()
                if now - since > self._down_grace_s
            )
        )

    async def _sync_outbox(self, outbox: Outbox) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._config.outbox.commit_interval_s)
            try:
                await asyncio.to_thread(outbox.sync)
            except StorageError as err:
                if not failing:
                    _LOGGER.warning("outbox cannot be forced to disk error=%s", err)
                failing = True
            else:
                failing = False

    def _checked_sensor(self, module: ModuleConfig) -> Sensor:
        try:
            return self._build_sensor(module.driver, module.sensor)
        except SensorMisconfigured as err:
            raise ConfigError(f"[modules.{module.module_id}] sensor: {err}") from None

    async def _supervise(self, module: ModuleConfig, outbox: Outbox) -> None:
        first: Sensor | None = self._first_sensors.pop(module.module_id)
        while True:
            try:
                sensor = first or self._build_sensor(module.driver, module.sensor)
                first = None
            except SensorMisconfigured as err:
                # The twin still runs, so the fault shows in reported
                # properties, not only in the local log.
                _LOGGER.error(
                    "sensor not usable module=%s error=%s", module.module_id, err
                )
                sensor = _BrokenSensor(err)
            runner = ModuleRunner(
                self._config,
                module,
                sensor=sensor,
                store=self._store,
                outbox=outbox,
                build_sensor=functools.partial(self._build_sensor, module.driver),
            )
            self._runners[module.module_id] = runner
            try:
                await runner.run()
            except Exception:
                _LOGGER.exception(
                    "module crashed, restarting module=%s delay_s=%g",
                    module.module_id,
                    self._restart_delay_s,
                )
            finally:
                if not runner.started.is_set():
                    # The runner releases its sensor only once started; a
                    # runner that failed before must not leave the bus or
                    # pin claimed for the next one.
                    await _close_quietly(sensor, module.module_id)
            await asyncio.sleep(self._restart_delay_s)

    async def _tell_service_manager(self) -> None:
        watchdog_s = self._notifier.watchdog_s
        # sd_watchdog_enabled(3) asks for a ping at half the deadline.
        ping_s = watchdog_s / 2 if watchdog_s else None
        tick_s = min(STATUS_INTERVAL_S, ping_s or STATUS_INTERVAL_S)
        ready = False
        shown = ""
        next_ping = self._monotonic()
        while True:
            line = self.status_line()
            if not ready and all(
                r is not None and r.started.is_set() for r in self._runners.values()
            ):
                ready = True
                self._notifier.ready(line)
                _LOGGER.info("agent ready modules=%d", len(self._runners))
            elif line != shown:
                self._notifier.status(line)
            shown = line
            due = ping_s is not None and self._monotonic() >= next_ping
            if due and ping_s is not None and self._healthy():
                self._notifier.watchdog()
                next_ping = self._monotonic() + ping_s
            await asyncio.sleep(tick_s)

    def _healthy(self) -> bool:
        unhealthy = self.unhealthy_modules()
        if unhealthy and unhealthy != self._withheld:
            _LOGGER.error(
                "watchdog pings withheld, module runner down modules=%s "
                "down_grace_s=%g; systemd will restart the agent",
                ",".join(unhealthy),
                self._down_grace_s,
            )
        elif self._withheld and not unhealthy:
            _LOGGER.info("watchdog pings resumed")
        self._withheld = unhealthy
        return not unhealthy


def _from_registry(driver: str, options: Mapping[str, Any]) -> Sensor:
    return create_sensor(driver, options)


async def _close_quietly(sensor: Sensor, module_id: str) -> None:
    try:
        await sensor.close()
    except Exception as err:  # Best effort: the runner is gone already.
        _LOGGER.debug("sensor close failed module=%s error=%r", module_id, err)


class _BrokenSensor:
    """Stands in for a sensor that could not be built; every open fails."""

    def __init__(self, error: SensorMisconfigured) -> None:
        self._error = error

    @property
    def quantities(self) -> tuple[str, ...]:
        return ()

    async def open(self) -> None:
        raise self._error

    async def read(self) -> Reading:
        raise self._error

    async def close(self) -> None:
        return None
