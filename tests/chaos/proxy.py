"""A TCP proxy that breaks the link on command: resets, blackholes, refusals.

It sits between the agent and the dev hub and forwards bytes untouched (TLS
passes through), so the agent and the hub see the faults a Pi sees on a bad
network: connections reset, traffic silently dropped (no FIN, no RST), and
connections refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct

_LOGGER = logging.getLogger(__name__)

_CHUNK_BYTES = 65536


class ChaosProxy:
    """Forwards ``listen`` to ``target`` until told to misbehave.

    Args:
        listen: Address and port to accept on (loopback).
        target: Address and port of the real server (loopback).
    """

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self._listen = listen
        self._target = target
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self.blackholed = False
        self.refusing = False
        self.accepted = 0

    async def start(self) -> None:
        """Start accepting connections."""
        self._server = await asyncio.start_server(self._accept, *self._listen)

    async def stop(self) -> None:
        """Stop accepting and reset every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.reset_all()

    def reset_all(self) -> int:
        """Reset every open connection (RST to both sides); return how many."""
        links = list(self._links)
        for link in links:
            link.reset()
        self._links.clear()
        return len(links)

    async def _accept(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        self.accepted += 1
        if self.refusing:
            _abort(client_writer)
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._target)
        except OSError:
            _abort(client_writer)
            return
        link = _Link(self, client_writer, server_writer)
        self._links.add(link)
        try:
            await asyncio.gather(
                link.pump(client_reader, server_writer),
                link.pump(server_reader, client_writer),
            )
        finally:
            self._links.discard(link)
            link.reset()


class _Link:
    """One proxied connection: two pumps and a way to kill both ends."""

    def __init__(
        self,
        proxy: ChaosProxy,
        client: asyncio.StreamWriter,
        server: asyncio.StreamWriter,
    ) -> None:
        self._proxy = proxy
        self._writers = (client, server)

    async def pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(_CHUNK_BYTES):
                if self._proxy.blackholed:
                    continue
                writer.write(data)
                await writer.drain()
        self.reset()

    def reset(self) -> None:
        for writer in self._writers:
            _abort(writer)


def _abort(writer: asyncio.StreamWriter) -> None:
    # SO_LINGER with a zero timeout makes close() send RST, not FIN.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
    writer.transport.abort()
