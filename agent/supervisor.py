"""The agent process: one runner per module, each failure contained.

A runner that crashes is logged once with its traceback and started again
after a pause; the other modules never notice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from agent.config import AgentConfig, ModuleConfig
from agent.errors import SensorMisconfigured
from agent.runner import ModuleRunner
from agent.state import StateStore
from sensors.base import Reading, Sensor
from sensors.registry import create_sensor

_LOGGER = logging.getLogger(__name__)

RESTART_DELAY_S = 10.0

SensorBuilder = Callable[[str, Mapping[str, Any]], Sensor]


class Agent:
    """All module runners of one device.

    Args:
        config: The agent config.
        sensor_builder: Builds a module's sensor from driver name and options;
            the sensor registry by default.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        sensor_builder: SensorBuilder | None = None,
    ) -> None:
        self._config = config
        self._build_sensor = sensor_builder or _from_registry
        self._store = StateStore(config.state_dir)

    async def run(self) -> None:
        """Run every module until cancelled."""
        _LOGGER.info(
            "agent starting device=%s hub=%s modules=%s",
            self._config.device_id,
            self._config.hub_hostname,
            ",".join(self._config.modules),
        )
        async with asyncio.TaskGroup() as tasks:
            for module in self._config.modules.values():
                tasks.create_task(
                    self._supervise(module), name=f"{module.module_id}.supervisor"
                )

    async def _supervise(self, module: ModuleConfig) -> None:
        while True:
            try:
                sensor = self._build_sensor(module.driver, module.sensor)
            except SensorMisconfigured as err:
                # The twin still runs, so the fault shows in reported
                # properties, not only in the local log.
                _LOGGER.error(
                    "sensor not usable module=%s error=%s", module.module_id, err
                )
                sensor = _BrokenSensor(err)
            runner = ModuleRunner(
                self._config, module, sensor=sensor, store=self._store
            )
            try:
                await runner.run()
            except Exception:
                _LOGGER.exception(
                    "module crashed, restarting module=%s delay_s=%g",
                    module.module_id,
                    RESTART_DELAY_S,
                )
            await asyncio.sleep(RESTART_DELAY_S)


def _from_registry(driver: str, options: Mapping[str, Any]) -> Sensor:
    return create_sensor(driver, options)


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
