"""Direct methods each module answers: ``read_now``, ``get_config``, ``restart_sensor``.

Each call is answered in its own task beside the module's link loop, so a
slow sensor never holds up desired patches; nothing raised here may escape
and take the module down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from agent.errors import SensorError
from agent.hubclient import MethodCall, ModuleLink
from agent.sensorkeeper import READ_TIMEOUT_S, SensorKeeper

_LOGGER = logging.getLogger(__name__)

Answer = tuple[int, Any]


class MethodAnswers:
    """Answers one module's direct method calls.

    Args:
        module_id: For log lines.
        keeper: The module's sensor.
        describe: Returns the ``get_config`` payload.
    """

    def __init__(
        self,
        module_id: str,
        keeper: SensorKeeper,
        *,
        describe: Callable[[], dict[str, Any]],
    ) -> None:
        self._name = module_id
        self._keeper = keeper
        self._describe = describe
        self._methods: dict[str, Callable[[], Awaitable[Answer]]] = {
            "get_config": self._get_config,
            "read_now": self._read_now,
            "restart_sensor": self._restart_sensor,
        }

    async def answer(self, link: ModuleLink, call: MethodCall) -> None:
        """Work out the answer to a call and send it; never raises."""
        # Runs beside the link loop in the runner's task group: nothing may
        # escape from here and take the module down with it.
        try:
            status, payload = await self._dispatch(call)
        except Exception:
            _LOGGER.exception(
                "method failed module=%s method=%s", self._name, call.name
            )
            status, payload = 500, {"error": "the module failed; see its log"}
        try:
            await link.answer(call, status, payload)
        except Exception as err:  # See above: a lost answer only times out.
            _LOGGER.warning(
                "method answer not sent module=%s method=%s error=%s",
                self._name,
                call.name,
                err,
            )
            return
        _LOGGER.info(
            "method answered module=%s method=%s status=%d",
            self._name,
            call.name,
            status,
        )

    async def _dispatch(self, call: MethodCall) -> Answer:
        method = self._methods.get(call.name)
        if method is None:
            known = ", ".join(sorted(self._methods))
            return 404, {"error": f"unknown method {call.name!r}; methods are {known}"}
        try:
            return await method()
        except (SensorError, TimeoutError) as err:
            return 503, {"error": str(err) or f"no answer within {READ_TIMEOUT_S:g}s"}

    async def _get_config(self) -> Answer:
        return 200, self._describe()

    async def _read_now(self) -> Answer:
        reading = await self._keeper.read()
        return 200, {
            "taken_at": reading.taken_at.isoformat(timespec="milliseconds"),
            "values": dict(reading.values),
        }

    async def _restart_sensor(self) -> Answer:
        await self._keeper.restart()
        # The state is what the readings say (a disabled module stays so).
        return 200, {"sensor": self._keeper.summary()["state"]}
