"""The real azure-iot-device SDK and paho-mqtt against the dev hub."""

import asyncio
import gc
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from azure.iot.device import Message
from azure.iot.device.aio import IoTHubModuleClient
from azure.iot.device.exceptions import CredentialError

from devhub import auth
from devhub.hub import DevHub
from tests.devhub.conftest import (
    DEVICE_ID,
    HOSTNAME,
    MODULE_ID,
    OTHER_MODULE_ID,
    WAIT_S,
)

ClientFactory = Callable[..., IoTHubModuleClient]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """Create SDK module clients; every one is shut down afterwards."""
    clients: list[IoTHubModuleClient] = []

    def make(connection_string: str, ca_pem: str) -> IoTHubModuleClient:
        client = IoTHubModuleClient.create_from_connection_string(
            connection_string,
            server_verification_cert=ca_pem,
            connection_retry=False,
            ensure_desired_properties=False,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.shutdown()
    del clients[:]
    gc.collect()


async def _connected(hub: DevHub, make: ClientFactory) -> IoTHubModuleClient:
    client = make(hub.module_connection_string(DEVICE_ID, MODULE_ID), hub.ca_pem)
    await client.connect()
    return client


async def _patch_queue(client: IoTHubModuleClient) -> asyncio.Queue[Any]:
    """Set a desired-patch handler feeding a queue on this loop."""
    loop = asyncio.get_running_loop()
    patches: asyncio.Queue[Any] = asyncio.Queue()

    def handler(patch: Any) -> None:
        loop.call_soon_threadsafe(patches.put_nowait, patch)

    # The SDK's setter blocks until SUBACK, so it runs off the loop.
    await asyncio.to_thread(
        setattr, client, "on_twin_desired_properties_patch_received", handler
    )
    return patches


async def test_connect_and_get_twin(hub: DevHub, make_client: ClientFactory) -> None:
    """Test that the SDK connects and reads a new module twin."""
    client = await _connected(hub, make_client)

    twin = await asyncio.wait_for(client.get_twin(), WAIT_S)

    assert twin == {"desired": {"$version": 1}, "reported": {"$version": 1}}
    assert hub.connected_clients() == {f"{DEVICE_ID}/{MODULE_ID}"}


async def test_patch_reported_bumps_its_version(
    hub: DevHub, make_client: ClientFactory
) -> None:
    """Test reported patches, null deletes included."""
    client = await _connected(hub, make_client)

    await asyncio.wait_for(
        client.patch_twin_reported_properties({"a": 1, "b": 2}), WAIT_S
    )
    await asyncio.wait_for(client.patch_twin_reported_properties({"b": None}), WAIT_S)

    twin = await asyncio.wait_for(client.get_twin(), WAIT_S)
    assert twin["reported"] == {"a": 1, "$version": 3}


async def test_invalid_reported_patch_raises_in_the_sdk(
    hub: DevHub, make_client: ClientFactory
) -> None:
    """Test that a rule violation comes back as status 400."""
    client = await _connected(hub, make_client)

    with pytest.raises(Exception, match="Unexpected failure") as caught:
        await asyncio.wait_for(
            client.patch_twin_reported_properties({"bad.key": 1}), WAIT_S
        )

    assert "400" in str(caught.value.__cause__)


async def test_desired_patch_reaches_the_handler(
    hub: DevHub, make_client: ClientFactory
) -> None:
    """Test service-side desired patch delivery with nulls and $version."""
    client = await _connected(hub, make_client)
    patches = await _patch_queue(client)

    hub.update_module_twin(
        DEVICE_ID, MODULE_ID, {"properties": {"desired": {"x": 5, "gone": None}}}
    )

    patch = await asyncio.wait_for(patches.get(), WAIT_S)
    assert patch == {"x": 5, "gone": None, "$version": 2}


async def test_send_message_is_stored_with_properties(
    hub: DevHub, make_client: ClientFactory
) -> None:
    """Test telemetry with system and custom properties."""
    client = await _connected(hub, make_client)
    message = Message('{"lux": 12}', message_id="m 1")
    message.content_type = "application/json"
    message.content_encoding = "utf-8"
    message.custom_properties["seq"] = "7&8"

    await asyncio.wait_for(client.send_message(message), WAIT_S)

    [stored] = hub.telemetry(DEVICE_ID, MODULE_ID)
    assert {k: v for k, v in stored.items() if k != "enqueued_time"} == {
        "sequence_number": 1,
        "body": '{"lux": 12}',
        "message_id": "m 1",
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "properties": {"seq": "7&8"},
        "device_id": DEVICE_ID,
        "module_id": MODULE_ID,
    }


async def test_wrong_key_raises_credential_error(
    hub: DevHub, make_client: ClientFactory
) -> None:
    """Test that CONNACK 5 surfaces as CredentialError."""
    wrong = hub.get_identity(DEVICE_ID, OTHER_MODULE_ID).primary_key
    good = hub.module_connection_string(DEVICE_ID, MODULE_ID)
    right = hub.get_identity(DEVICE_ID, MODULE_ID).primary_key
    client = make_client(good.replace(right, wrong), hub.ca_pem)

    with pytest.raises(CredentialError):
        await asyncio.wait_for(client.connect(), WAIT_S)

    assert hub.connected_clients() == set()


async def test_expired_token_raises_credential_error(
    tmp_path: Path, hub_host: str, make_client: ClientFactory
) -> None:
    """Test that a token already expired by the hub's clock is refused."""
    # The hub's clock runs two hours ahead of the SDK's one-hour tokens.
    ahead = DevHub(tmp_path / "hub", host=hub_host, clock=lambda: time.time() + 7200)
    async with ahead:
        ahead.ensure_module(DEVICE_ID, MODULE_ID)
        client = make_client(
            ahead.module_connection_string(DEVICE_ID, MODULE_ID), ahead.ca_pem
        )

        with pytest.raises(CredentialError):
            await asyncio.wait_for(client.connect(), WAIT_S)


async def test_subscriptions_survive_a_hub_restart(
    hub: DevHub, make_client: ClientFactory, tmp_path: Path, hub_host: str
) -> None:
    """Test that the SDK keeps receiving patches without re-subscribing."""
    client = await _connected(hub, make_client)
    patches = await _patch_queue(client)
    await asyncio.wait_for(client.get_twin(), WAIT_S)
    await hub.stop()

    restarted = DevHub(tmp_path / "hub", host=hub_host, hostname=HOSTNAME)
    async with restarted:
        await asyncio.wait_for(client.connect(), WAIT_S)
        restarted.update_module_twin(
            DEVICE_ID, MODULE_ID, {"properties": {"desired": {"x": 1}}}
        )

        patch = await asyncio.wait_for(patches.get(), WAIT_S)
        twin = await asyncio.wait_for(client.get_twin(), WAIT_S)

    assert patch == {"x": 1, "$version": 2}
    assert twin["desired"] == {"x": 1, "$version": 2}


async def test_direct_method_round_trip(
    hub: DevHub, make_client: ClientFactory
) -> None:
    """Test a direct method call answered by the SDK's handler."""
    from azure.iot.device import MethodResponse

    client = await _connected(hub, make_client)

    async def on_method(request: Any) -> None:
        response = MethodResponse.create_from_method_request(
            request, 200, {"echo": request.payload}
        )
        await client.send_method_response(response)

    await asyncio.to_thread(setattr, client, "on_method_request_received", on_method)

    answer = await hub.invoke_method(
        DEVICE_ID, MODULE_ID, "ping", {"n": 1}, timeout_s=5
    )

    assert answer == {"status": 200, "payload": {"echo": {"n": 1}}}


class _PahoClient:
    """A paho-mqtt 1.x client following IoT Hub's conventions by hand."""

    def __init__(self, hub: DevHub, module_id: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.messages: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.subacks: asyncio.Queue[tuple[int, ...]] = asyncio.Queue()
        self.disconnected = asyncio.Event()
        client_id = f"{DEVICE_ID}/{module_id}"
        self.client = paho.Client(client_id=client_id, protocol=paho.MQTTv311)
        key = hub.get_identity(DEVICE_ID, module_id).primary_key
        uri = f"{HOSTNAME}/devices/{DEVICE_ID}/modules/{module_id}"
        token = auth.mint_sas_token(uri, key, expiry=int(time.time()) + 600)
        username = f"{HOSTNAME}/{client_id}/?api-version=2021-04-12"
        self.client.username_pw_set(username, token)
        context = ssl.create_default_context(cafile=str(hub.ca_path))
        self.client.tls_set_context(context)
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.host = hub.host

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        item = (message.topic, message.payload)
        self.loop.call_soon_threadsafe(self.messages.put_nowait, item)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, qos: Any) -> None:
        self.loop.call_soon_threadsafe(self.subacks.put_nowait, tuple(qos))

    def _on_disconnect(self, client: Any, userdata: Any, rc: int) -> None:
        self.loop.call_soon_threadsafe(self.disconnected.set)

    async def start(self) -> None:
        await asyncio.to_thread(self.client.connect, self.host, 8883, 60)
        self.client.loop_start()

    async def subscribe(self, topic_filter: str) -> tuple[int, ...]:
        self.client.subscribe(topic_filter, qos=1)
        return await asyncio.wait_for(self.subacks.get(), WAIT_S)

    async def stop(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)


@pytest.fixture
async def paho_client(hub: DevHub) -> AsyncIterator[_PahoClient]:
    """A started paho client for the test module."""
    client = _PahoClient(hub, MODULE_ID)
    await client.start()
    yield client
    await client.stop()


async def test_paho_twin_get_and_reported_patch(
    paho_client: _PahoClient, hub: DevHub
) -> None:
    """Test the twin topics driven by hand from a plain MQTT client."""
    assert await paho_client.subscribe("$iothub/twin/res/#") == (1,)

    paho_client.client.publish(
        "$iothub/twin/PATCH/properties/reported/?$rid=p1", '{"t": 21.5}', qos=1
    )
    patched = await asyncio.wait_for(paho_client.messages.get(), WAIT_S)
    paho_client.client.publish("$iothub/twin/GET/?$rid=g1", " ", qos=1)
    got = await asyncio.wait_for(paho_client.messages.get(), WAIT_S)

    assert patched == ("$iothub/twin/res/204/?$rid=p1&$version=2", b"")
    assert got[0] == "$iothub/twin/res/200/?$rid=g1"
    assert json.loads(got[1])["reported"] == {"t": 21.5, "$version": 2}


async def test_paho_cannot_subscribe_to_another_module(
    paho_client: _PahoClient,
) -> None:
    """Test subscribe access control: SUBACK 0x80 for a foreign filter."""
    foreign = f"devices/{DEVICE_ID}/modules/{OTHER_MODULE_ID}/inputs/#"

    granted = await paho_client.subscribe(foreign)

    assert granted == (0x80,)


async def test_paho_publish_to_another_module_is_cut_off(
    paho_client: _PahoClient, hub: DevHub
) -> None:
    """Test publish access control: the connection is closed, nothing stored."""
    topic = f"devices/{DEVICE_ID}/modules/{OTHER_MODULE_ID}/messages/events/"

    paho_client.client.publish(topic, "spoof", qos=1)

    await asyncio.wait_for(paho_client.disconnected.wait(), WAIT_S)
    assert hub.telemetry(DEVICE_ID, OTHER_MODULE_ID) == []
