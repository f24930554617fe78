"""Two kinds of module client for conformance tests: the SDK and plain paho.

Both speak to the dev hub the way a device speaks to IoT Hub; the tests run
the same twin scenario through each, so a behaviour the hub gets right only
for the SDK's habits (or only for a hand-written client) shows up.
"""

import asyncio
import itertools
import json
import re
import ssl
import time
from typing import Any, Protocol

import paho.mqtt.client as paho
from azure.iot.device.aio import IoTHubModuleClient
from azure.iot.device.exceptions import ClientError

from devhub import auth
from devhub.hub import DevHub
from tests.devhub.conftest import DEVICE_ID, HOSTNAME, WAIT_S

TWIN_RESPONSES = "$iothub/twin/res/#"
DESIRED_PATCHES = "$iothub/twin/PATCH/properties/desired/#"
_STATUS_RE = re.compile(r"\b([45]\d\d)\b")


class TwinRefused(Exception):
    """The hub answered a twin request with an error status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"twin request answered {status}")
        self.status = status


class TwinClient(Protocol):
    """What a conformance test does with a module's twin."""

    async def get_twin(self) -> dict[str, Any]:
        """Return the twin document (raise ``TwinRefused`` on an error)."""

    async def patch_reported(self, patch: dict[str, Any]) -> None:
        """Send a reported patch (raise ``TwinRefused`` on an error)."""

    async def next_desired_patch(self) -> dict[str, Any]:
        """Return the next desired-patch notification."""

    async def close(self) -> None:
        """Disconnect and release the client."""


class SdkTwinClient:
    """The real ``azure.iot.device.aio.IoTHubModuleClient``."""

    def __init__(self, client: IoTHubModuleClient) -> None:
        self._client = client
        self._patches: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @classmethod
    async def open(cls, hub: DevHub, module_id: str) -> "SdkTwinClient":
        client = IoTHubModuleClient.create_from_connection_string(
            hub.module_connection_string(DEVICE_ID, module_id),
            server_verification_cert=hub.ca_pem,
            connection_retry=False,
            ensure_desired_properties=False,
        )
        self = cls(client)
        await client.connect()
        loop = asyncio.get_running_loop()

        def on_patch(patch: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(self._patches.put_nowait, patch)

        # The setter blocks until SUBACK (reference §3.2), so off the loop.
        await asyncio.to_thread(
            setattr, client, "on_twin_desired_properties_patch_received", on_patch
        )
        return self

    async def get_twin(self) -> dict[str, Any]:
        return await self._call(self._client.get_twin())  # type: ignore[no-any-return]

    async def patch_reported(self, patch: dict[str, Any]) -> None:
        await self._call(self._client.patch_twin_reported_properties(patch))

    async def next_desired_patch(self) -> dict[str, Any]:
        return await asyncio.wait_for(self._patches.get(), WAIT_S)

    async def close(self) -> None:
        await self._client.shutdown()

    async def _call(self, request: Any) -> Any:
        try:
            return await asyncio.wait_for(request, WAIT_S)
        except ClientError as err:
            # Status >= 300 surfaces as ClientError caused by ServiceError
            # carrying the status in its message (reference §4.1).
            found = _STATUS_RE.search(str(err.__cause__))
            if found is None:
                raise
            raise TwinRefused(int(found.group(1))) from err


class PahoTwinClient:
    """paho-mqtt 1.x following IoT Hub's client id, username and topics."""

    def __init__(self, client: paho.Client, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop
        self._rids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[tuple[int, bytes]]] = {}
        self._patches: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._acks: asyncio.Queue[object] = asyncio.Queue()

    @classmethod
    async def open(cls, hub: DevHub, module_id: str) -> "PahoTwinClient":
        key = hub.get_identity(DEVICE_ID, module_id).primary_key
        uri = f"{HOSTNAME}/devices/{DEVICE_ID}/modules/{module_id}"
        token = auth.mint_sas_token(uri, key, expiry=int(time.time()) + 3600)
        client = paho.Client(
            client_id=f"{DEVICE_ID}/{module_id}",
            clean_session=False,
            protocol=paho.MQTTv311,
        )
        # tls_set() builds a PROTOCOL_TLS context, deprecated since 3.10.
        client.tls_set_context(ssl.create_default_context(cafile=str(hub.ca_path)))
        client.username_pw_set(
            f"{HOSTNAME}/{DEVICE_ID}/{module_id}/?api-version=2021-04-12", token
        )
        self = cls(client, asyncio.get_running_loop())
        client.on_connect = self._on_ack
        client.on_subscribe = self._on_ack
        client.on_message = self._on_message
        await asyncio.to_thread(client.connect, hub.host, hub.mqtt_port, 60)
        client.loop_start()
        await self._next_ack()
        client.subscribe([(TWIN_RESPONSES, 1), (DESIRED_PATCHES, 1)])
        await self._next_ack()
        return self

    async def get_twin(self) -> dict[str, Any]:
        _, body = await self._request("$iothub/twin/GET/", b"")
        document: dict[str, Any] = json.loads(body)
        return document

    async def patch_reported(self, patch: dict[str, Any]) -> None:
        topic = "$iothub/twin/PATCH/properties/reported/"
        await self._request(topic, json.dumps(patch).encode())

    async def next_desired_patch(self) -> dict[str, Any]:
        return await asyncio.wait_for(self._patches.get(), WAIT_S)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.disconnect)
        await asyncio.to_thread(self._client.loop_stop)

    async def _request(self, prefix: str, body: bytes) -> tuple[int, bytes]:
        rid = str(next(self._rids))
        future = self._loop.create_future()
        self._waiting[rid] = future
        self._client.publish(f"{prefix}?$rid={rid}", body, qos=1)
        status, answer = await asyncio.wait_for(future, WAIT_S)
        if status >= 300:
            raise TwinRefused(status)
        return status, answer

    async def _next_ack(self) -> None:
        await asyncio.wait_for(self._acks.get(), WAIT_S)

    def _on_ack(self, *args: object) -> None:
        self._loop.call_soon_threadsafe(self._acks.put_nowait, args)

    def _on_message(self, client: object, userdata: object, msg: Any) -> None:
        self._loop.call_soon_threadsafe(self._handle, msg.topic, bytes(msg.payload))

    def _handle(self, topic: str, payload: bytes) -> None:
        if topic.startswith("$iothub/twin/PATCH/properties/desired/"):
            self._patches.put_nowait(json.loads(payload))
            return
        status = int(topic.split("/")[3])
        query = dict(item.split("=", 1) for item in topic.split("?", 1)[1].split("&"))
        future = self._waiting.pop(query["$rid"], None)
        if future is not None and not future.done():
            future.set_result((status, payload))


CLIENT_KINDS = {"sdk": SdkTwinClient, "paho": PahoTwinClient}
