"""The chaos proxy itself: forwards, resets, blackholes, refuses."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator

import pytest

from tests.chaos.proxy import ChaosProxy

_ports = itertools.count(20000 + os.getpid() % 20000)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[ChaosProxy]:
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    target = server.sockets[0].getsockname()[:2]
    chaos = ChaosProxy(("127.0.0.1", next(_ports)), target)
    await chaos.start()
    yield chaos
    await chaos.stop()
    server.close()


async def connect(
    proxy: ChaosProxy,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*proxy._listen)


async def test_bytes_pass_both_ways(proxy: ChaosProxy) -> None:
    """Test that the proxy forwards data untouched."""
    reader, writer = await connect(proxy)

    writer.write(b"ping")
    echoed = await asyncio.wait_for(reader.readexactly(4), 5)

    assert echoed == b"ping"
    writer.close()


async def test_reset_all_resets_the_client(proxy: ChaosProxy) -> None:
    """Test that a reset reaches the client as a connection reset."""
    reader, writer = await connect(proxy)
    writer.write(b"x")
    await asyncio.wait_for(reader.readexactly(1), 5)

    assert proxy.reset_all() == 1

    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 5)


async def test_blackhole_drops_silently(proxy: ChaosProxy) -> None:
    """Test that while blackholed nothing arrives and nothing closes."""
    reader, writer = await connect(proxy)
    proxy.blackholed = True

    writer.write(b"lost")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.3)

    proxy.blackholed = False
    writer.write(b"back")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"back"
    writer.close()


async def test_refusing_closes_new_connections(proxy: ChaosProxy) -> None:
    """Test that a refusing proxy drops new connections at once."""
    proxy.refusing = True
    reader, _writer = await connect(proxy)

    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 5)
