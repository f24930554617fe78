"""Fixtures for the dev hub tests: hubs on their own loopback addresses."""

import asyncio
import contextlib
import itertools
import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from devhub import auth
from devhub import mqtt_codec as mqtt
from devhub.hub import DevHub

DEVICE_ID = "pi"
MODULE_ID = "light"
OTHER_MODULE_ID = "moisture"
HOSTNAME = "devhub.local"
# A deadline so a broken build fails instead of hanging; never asserted on.
WAIT_S = 20.0

_hosts = itertools.count(2)
# The MQTT port is fixed at 8883, so hubs differ by address. The third octet
# keeps two test runs on one machine (other processes) apart.
_subnet = os.getpid() % 200 + 20


@pytest.fixture
def hub_host() -> str:
    """Give each test its own loopback address."""
    return f"127.0.{_subnet}.{next(_hosts) % 250 + 2}"


@pytest.fixture
async def hub(tmp_path: Path, hub_host: str) -> AsyncIterator[DevHub]:
    """A running dev hub with one device and two modules."""
    dev_hub = DevHub(tmp_path / "hub", host=hub_host, hostname=HOSTNAME)
    await dev_hub.start()
    dev_hub.add_device(DEVICE_ID)
    dev_hub.add_module(DEVICE_ID, MODULE_ID)
    dev_hub.add_module(DEVICE_ID, OTHER_MODULE_ID)
    yield dev_hub
    await dev_hub.stop()


class RawClient:
    """An MQTT client speaking packets built by the codec under test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    async def send(self, packet: mqtt.Packet) -> None:
        self.writer.write(mqtt.encode(packet))
        await self.writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def receive(self) -> mqtt.Packet:
        async with asyncio.timeout(WAIT_S):
            return await mqtt.read_packet(self.reader, max_bytes=1 << 20)

    async def closed_by_hub(self) -> bool:
        """Wait until the hub closes the connection; False if a packet came."""
        try:
            async with asyncio.timeout(WAIT_S):
                data = await self.reader.read(1)
        except (ConnectionError, ssl.SSLError):
            return True
        return data == b""

    async def connect(self, packet: mqtt.Connect) -> mqtt.ConnAck:
        """Send CONNECT and return the CONNACK."""
        await self.send(packet)
        ack = await self.receive()
        assert isinstance(ack, mqtt.ConnAck)
        return ack

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


def module_connect(
    hub: DevHub,
    module_id: str = MODULE_ID,
    *,
    key: str | None = None,
    expiry: int | None = None,
    clean_session: bool = False,
    keep_alive_s: int = 60,
) -> mqtt.Connect:
    """Return the CONNECT the device SDK would send for a module."""
    key = key or hub.get_identity(DEVICE_ID, module_id).primary_key
    uri = f"{HOSTNAME}/devices/{DEVICE_ID}/modules/{module_id}"
    token = auth.mint_sas_token(uri, key, expiry=expiry or int(time.time()) + 3600)
    return mqtt.Connect(
        client_id=f"{DEVICE_ID}/{module_id}",
        clean_session=clean_session,
        keep_alive_s=keep_alive_s,
        username=f"{HOSTNAME}/{DEVICE_ID}/{module_id}/?api-version=2021-04-12",
        password=token.encode(),
    )


OpenClient = Callable[[], Awaitable[RawClient]]


@pytest.fixture
async def raw_client(hub: DevHub) -> AsyncIterator[OpenClient]:
    """Open TLS connections to the hub's MQTT port; all closed afterwards."""
    opened: list[RawClient] = []

    async def open_client() -> RawClient:
        context = ssl.create_default_context(cafile=str(hub.ca_path))
        reader, writer = await asyncio.open_connection(
            hub.host, hub.mqtt_port, ssl=context
        )
        client = RawClient(reader, writer)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.close()


async def eventually(check: Callable[[], object], *, what: str) -> object:
    """Poll ``check`` until truthy; fail after a deadline."""
    try:
        async with asyncio.timeout(WAIT_S):
            # The hub's state has no event to wait on, so poll it.
            while not (result := check()):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"never happened: {what}")
    return result
