"""An asyncio face on one ``IoTHubModuleClient``, with deadlines on every call.

The SDK has no timeout on twin requests, blocks the calling thread while a
handler is being subscribed, runs handlers on its own threads, and stops
reconnecting for good after one refused CONNACK (reference sections 2.3,
3.2, 4.1 and 4.5). This wrapper gives the runner plain coroutines that
either finish in time or raise :class:`LinkError`; the runner owns
reconnection.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from azure.iot.device import Message, MethodResponse
from azure.iot.device import exceptions as sdk_errors
from azure.iot.device.aio import IoTHubModuleClient

from agent.clock import wait_for_plausible_clock
from agent.errors import AuthRefused, HubRefused, LinkError, LinkTimeout

_LOGGER = logging.getLogger(__name__)

_T = TypeVar("_T")
_STATUS_RE = re.compile(r"status (\d{3})")
# Longest wait for a handler's SUBSCRIBE to be acknowledged; past it the
# subscription is treated as a failed link.
_SUBSCRIBE_TIMEOUT_S = 30.0
# What the SDK raises from a call or a handler setter.
_SDK_ERRORS = (
    sdk_errors.ClientError,
    sdk_errors.OperationTimeout,
    sdk_errors.OperationCancelled,
)


@dataclass(frozen=True, slots=True)
class MethodCall:
    """A direct method call waiting for its answer.

    Attributes:
        request_id: The hub's id for the call; the answer must carry it.
        name: The method name.
        payload: The JSON payload sent by the caller.
    """

    request_id: str
    name: str
    payload: Any


class ModuleLink:
    """One module's connection to the hub.

    Args:
        connection_string: The module connection string.
        ca_pem: PEM text of the only CA to trust, or ``None`` for the system's.
        call_timeout_s: Deadline of every SDK call.
        keep_alive_s: MQTT keep-alive.
        wake: Set whenever the connection state changes or a patch arrives.
    """

    def __init__(
        self,
        connection_string: str,
        *,
        ca_pem: str | None,
        call_timeout_s: float,
        keep_alive_s: int,
        wake: asyncio.Event,
    ) -> None:
        self._connection_string = connection_string
        self._ca_pem = ca_pem
        self._timeout_s = call_timeout_s
        self._keep_alive_s = keep_alive_s
        self._client: Any = None
        self._handlers_set = False
        self._loop = asyncio.get_running_loop()
        self._wake = wake
        self._patches: collections.deque[dict[str, Any]] = collections.deque()
        self._methods: collections.deque[MethodCall] = collections.deque()

    @property
    def connected(self) -> bool:
        """Whether the SDK reports a live connection."""
        return bool(self._client is not None and self._client.connected)

    def has_patches(self) -> bool:
        """Whether desired patches or method calls are waiting to be taken."""
        return bool(self._patches or self._methods)

    def take_methods(self) -> list[MethodCall]:
        """Return the direct method calls received since the last call."""
        calls = list(self._methods)
        self._methods.clear()
        return calls

    async def answer(self, call: MethodCall, status: int, payload: Any) -> None:
        """Send the response to a direct method call."""
        response = MethodResponse(call.request_id, status, payload)
        await self._call(
            "method response", lambda client: client.send_method_response(response)
        )

    def take_patches(self) -> list[dict[str, Any]]:
        """Return the desired patches received since the last call."""
        patches = list(self._patches)
        self._patches.clear()
        return patches

    async def connect(self) -> None:
        """Connect, building the client first if there is none.

        Raises:
            AuthRefused: The hub refused the credentials.
            LinkError: The hub could not be reached in time.
        """
        if self._client is None:
            # Building a client mints its SAS token from the wall clock.
            await wait_for_plausible_clock()
            # Building a client waits on the SDK's pipeline thread, which all
            # clients share and which may be busy in another module's TLS
            # handshake; so it must not run on the event loop.
            self._client = await asyncio.to_thread(self._build)
        await self._call("connect", lambda client: client.connect())
        if not self._handlers_set:
            await self._subscribe()

    async def get_twin(self) -> dict[str, Any]:
        """Fetch the twin as the module sees it (desired and reported)."""
        twin = await self._call("twin GET", lambda client: client.get_twin())
        if not isinstance(twin, dict):
            raise LinkError(f"twin GET returned {type(twin).__name__}, not an object")
        return twin

    async def patch_reported(self, patch: Mapping[str, Any]) -> None:
        """Send a reported-properties patch."""
        await self._call(
            "reported patch",
            lambda client: client.patch_twin_reported_properties(dict(patch)),
        )

    async def send(
        self,
        body: str,
        *,
        message_id: str,
        properties: Mapping[str, str],
    ) -> None:
        """Send one telemetry message with a JSON body."""
        message = Message(
            body,
            message_id=message_id,
            content_encoding="utf-8",
            content_type="application/json",
        )
        message.custom_properties.update(properties)
        await self._call("telemetry send", lambda client: client.send_message(message))

    async def rebuild(self) -> None:
        """Shut the client down; the next :meth:`connect` builds a new one.

        Used when a call timed out while the SDK still claims a connection:
        such a client may be wedged, and a fresh one subscribes again.
        """
        client, self._client = self._client, None
        self._handlers_set = False
        if client is not None:
            await _shutdown(client, self._timeout_s)

    async def close(self) -> None:
        """Disconnect and release the SDK's threads."""
        await self.rebuild()

    def _build(self) -> Any:
        try:
            client = IoTHubModuleClient.create_from_connection_string(
                self._connection_string,
                server_verification_cert=self._ca_pem,
                keep_alive=self._keep_alive_s,
                # The runner reconnects with backoff and resyncs by version
                # itself (DESIGN.md "Twin sync").
                connection_retry=False,
                ensure_desired_properties=False,
            )
        except ValueError as err:
            raise AuthRefused(f"connection string rejected by the SDK: {err}") from None
        client.on_connection_state_change = self._on_state_change
        client.on_background_exception = self._on_background_exception
        return client

    async def _subscribe(self) -> None:
        # The setter blocks until the hub acknowledges the SUBSCRIBE, so it
        # runs in a worker thread; the SDK then calls the handler from its
        # own thread pool.
        client = self._client
        handlers = (
            ("on_twin_desired_properties_patch_received", self._on_patch),
            ("on_method_request_received", self._on_method),
        )
        for name, handler in handlers:
            try:
                async with asyncio.timeout(_SUBSCRIBE_TIMEOUT_S):
                    await asyncio.to_thread(setattr, client, name, handler)
            except TimeoutError:
                raise LinkTimeout(f"subscribe for {name} got no answer") from None
            except _SDK_ERRORS as err:
                raise _translate("subscribe", err) from err
        self._handlers_set = True

    async def _call(self, what: str, call: Callable[[Any], Awaitable[_T]]) -> _T:
        client = self._client
        if client is None:
            raise LinkError(f"{what}: the client is being rebuilt")
        try:
            async with asyncio.timeout(self._timeout_s):
                return await call(client)
        except TimeoutError:
            raise LinkTimeout(f"{what} got no answer in {self._timeout_s:g}s") from None
        except _SDK_ERRORS as err:
            raise _translate(what, err) from err

    async def _on_patch(self, patch: dict[str, Any]) -> None:
        # A coroutine handler runs on the SDK's one handler loop, in the
        # order the patches came (plain functions would run on a pool of
        # four threads, in any order); hand over to our event loop.
        self._loop.call_soon_threadsafe(self._queue_patch, patch)

    def _queue_patch(self, patch: dict[str, Any]) -> None:
        self._patches.append(patch)
        self._wake.set()

    async def _on_method(self, request: Any) -> None:
        call = MethodCall(request.request_id, request.name, request.payload)
        self._loop.call_soon_threadsafe(self._queue_method, call)

    def _queue_method(self, call: MethodCall) -> None:
        self._methods.append(call)
        self._wake.set()

    def _on_state_change(self) -> None:
        self._loop.call_soon_threadsafe(self._wake.set)

    def _on_background_exception(self, error: Exception) -> None:
        _LOGGER.debug("SDK background error error=%r", error)


def _translate(what: str, err: Exception) -> Exception:
    if isinstance(err, sdk_errors.OperationCancelled):
        return LinkError(f"{what} cancelled: connection lost")
    if isinstance(err, sdk_errors.CredentialError):
        return AuthRefused(f"{what}: the hub refused the credentials")
    cause = err.__cause__
    if isinstance(cause, sdk_errors.ServiceError):
        match = _STATUS_RE.search(str(cause))
        return HubRefused(what, int(match.group(1)) if match else 500)
    if isinstance(err, sdk_errors.ConnectionFailedError):
        return LinkError(f"{what}: hub unreachable")
    if isinstance(
        err, sdk_errors.ConnectionDroppedError | sdk_errors.NoConnectionError
    ):
        return LinkError(f"{what}: connection lost")
    if isinstance(err, sdk_errors.OperationTimeout):
        return LinkTimeout(f"{what}: timed out in the SDK")
    if "TLS" in str(err):
        return LinkError(
            f"{what}: TLS handshake failed; check ca_file and the hub name"
        )
    return LinkError(f"{what}: {err}")


async def _shutdown(client: Any, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            await client.shutdown()
    except TimeoutError:
        _LOGGER.warning("client shutdown got no answer timeout_s=%g", timeout_s)
    except Exception as err:  # Best effort on the way out.
        _LOGGER.debug("client shutdown failed error=%r", err)
