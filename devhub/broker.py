"""An MQTT 3.1.1 server with IoT Hub's restrictions, over TLS.

It speaks the protocol (sessions, subscriptions, keep-alive, one connection
per client id) and leaves identities and topic meaning to an ``Endpoint``.
Hub-to-client messages go out at QoS 0: IoT Hub delivers method requests at
QoS 0 and has been observed sending twin responses at QoS 0 (reference §3.5),
and it queues nothing for offline clients, so nothing needs retransmission.
"""

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from devhub import mqtt_codec as mqtt
from devhub.faults import Faults
from devhub.store import Store
from devhub.topics import Principal, topic_matches

_LOGGER = logging.getLogger(__name__)

CONNACK_ACCEPTED = 0
CONNACK_BAD_PROTOCOL = 1
CONNACK_BAD_CLIENT_ID = 2
CONNACK_NOT_AUTHORIZED = 5
SUBACK_FAILURE = 0x80
# IoT Hub accepts at most five subscriptions per client (MQTT support doc).
MAX_SUBSCRIPTIONS = 5
# A 256 KiB message (IoT Hub's device-to-cloud limit) plus its topic.
MAX_PACKET_BYTES = 256 * 1024 + 8 * 1024
CONNECT_TIMEOUT_S = 30.0
TLS_HANDSHAKE_TIMEOUT_S = 10.0
# The hub closes a silent connection after 1.5 keep-alive periods (§3.1.2.10).
KEEP_ALIVE_GRACE = 1.5


class Refused(Exception):
    """A CONNECT is refused with ``return_code`` for ``reason``."""

    def __init__(self, return_code: int, reason: str) -> None:
        super().__init__(reason)
        self.return_code = return_code
        self.reason = reason


class AccessDenied(Exception):
    """A PUBLISH is not allowed; the connection is closed."""


class Throttled(Exception):
    """A PUBLISH is refused as over a throttle; the connection is closed."""


@dataclass(frozen=True, slots=True)
class Admission:
    """An accepted CONNECT: who it is and when its credentials expire."""

    principal: Principal
    expires_at_s: float


class Endpoint(Protocol):
    """What the broker asks about identities and topics."""

    def admit(self, connect: mqtt.Connect) -> Admission:
        """Authenticate a CONNECT, or raise ``Refused``."""

    def may_subscribe(self, principal: Principal, topic_filter: str) -> bool:
        """Return True if ``principal`` may subscribe to ``topic_filter``."""

    async def on_publish(
        self, principal: Principal, publish: mqtt.Publish, *, is_will: bool
    ) -> None:
        """Handle a PUBLISH (or a will), or raise ``AccessDenied``."""


@dataclass(eq=False)
class _Connection:
    principal: Principal
    connect: mqtt.Connect
    writer: asyncio.StreamWriter
    subscriptions: dict[str, int]
    clean_exit: bool = False
    expiry: asyncio.TimerHandle | None = field(default=None)

    def send(self, packet: mqtt.Packet) -> None:
        if not self.writer.is_closing():
            self.writer.write(mqtt.encode(packet))

    def abort(self) -> None:
        self.writer.transport.abort()


class _Close(Exception):
    """Close the connection after logging ``reason``."""


class Broker:
    """Accepts MQTT clients and keeps their sessions in ``store``.

    Args:
        store: Where sessions and subscriptions persist.
        clock: Seconds since the epoch (injectable for tests).
        max_packet_bytes: Packets longer than this close the connection.
        faults: Test knobs; all off unless a test turns them on.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        max_packet_bytes: int = MAX_PACKET_BYTES,
        faults: Faults | None = None,
    ) -> None:
        self._store = store
        self._faults = faults or Faults()
        self._clock = clock
        self._max_packet_bytes = max_packet_bytes
        self._live: dict[str, _Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._endpoint: Endpoint | None = None

    async def start(
        self, endpoint: Endpoint, host: str, port: int, ssl_context: ssl.SSLContext
    ) -> None:
        """Listen on ``host:port`` with TLS."""
        self._endpoint = endpoint
        self._server = await asyncio.start_server(
            self._serve,
            host,
            port,
            ssl=ssl_context,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S,
        )
        _LOGGER.info("MQTT listening host=%s port=%s", host, port)

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        # Aborting every socket (connected or still handshaking) ends each
        # handler through its normal error path; cancelling them instead
        # would make asyncio log the cancelled handler tasks as errors.
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def connected_clients(self) -> set[str]:
        """Return the client ids with a live connection."""
        return set(self._live)

    def deliver(self, client_id: str, topic: str, payload: bytes) -> bool:
        """Send a message if the client is connected and subscribed.

        Returns:
            True if it was sent.
        """
        conn = self._live.get(client_id)
        if conn is None:
            return False
        if not any(topic_matches(f, topic) for f in conn.subscriptions):
            return False
        conn.send(mqtt.Publish(topic, payload))
        _LOGGER.debug("sent client_id=%s topic=%s", client_id, topic)
        return True

    def disconnect(self, client_id: str) -> bool:
        """Abort the client's connection; return True if it had one."""
        conn = self._live.get(client_id)
        if conn is None:
            return False
        _LOGGER.info("connection closed by the hub client_id=%s", client_id)
        conn.abort()
        return True

    def drop(self, selected: Callable[[Principal], bool]) -> int:
        """Abort (no DISCONNECT) the connections ``selected`` picks."""
        chosen = [c for c in self._live.values() if selected(c.principal)]
        for conn in chosen:
            _LOGGER.info("connection dropped client_id=%s", conn.principal.client_id)
            conn.abort()
        return len(chosen)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        conn = None
        try:
            conn = await self._handshake(reader, writer)
            if conn is not None and self._faults.take("close_after_connack"):
                await writer.drain()
                raise _Close("closed after CONNACK by fault knob")
            if conn is not None:
                await self._read_loop(conn, reader)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            _LOGGER.debug("connection lost peer=%s", writer.get_extra_info("peername"))
        except (mqtt.MalformedPacket, _Close) as err:
            _LOGGER.warning("connection closed client_id=%s reason=%s", _cid(conn), err)
        except TimeoutError:
            _LOGGER.info("connection idle, closed client_id=%s", _cid(conn))
        except Exception:
            _LOGGER.exception("connection handler crashed client_id=%s", _cid(conn))
        finally:
            await self._finish(conn, writer)
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> _Connection | None:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            first = await mqtt.read_packet(reader, max_bytes=self._max_packet_bytes)
        if not isinstance(first, mqtt.Connect):
            raise _Close(f"first packet is {type(first).__name__}, not CONNECT")
        try:
            admission = self._admit(first)
        except Refused as refusal:
            _LOGGER.warning(
                "connection refused client_id=%s code=%s reason=%s",
                first.client_id,
                refusal.return_code,
                refusal.reason,
            )
            writer.write(mqtt.encode(mqtt.ConnAck(False, refusal.return_code)))
            await writer.drain()
            return None
        return self._register(first, admission, writer)

    def _admit(self, connect: mqtt.Connect) -> Admission:
        if (connect.protocol_name, connect.protocol_level) != ("MQTT", 4):
            level = f"{connect.protocol_name} level {connect.protocol_level}"
            raise Refused(CONNACK_BAD_PROTOCOL, f"{level} is not MQTT 3.1.1")
        if not connect.client_id:
            raise Refused(CONNACK_BAD_CLIENT_ID, "empty client id")
        assert self._endpoint is not None
        return self._endpoint.admit(connect)

    def _register(
        self, connect: mqtt.Connect, admission: Admission, writer: asyncio.StreamWriter
    ) -> _Connection:
        client_id = admission.principal.client_id
        old = self._live.pop(client_id, None)
        if old is not None:
            # IoT Hub error 400027: a new connection closes the older one.
            _LOGGER.info("connection replaced by a new one client_id=%s", client_id)
            old.abort()
        present = self._store.open_session(client_id, clean=connect.clean_session)
        subscriptions = self._store.subscriptions(client_id)
        conn = _Connection(admission.principal, connect, writer, subscriptions)
        self._live[client_id] = conn
        delay_s = max(0.0, admission.expires_at_s - self._clock())
        conn.expiry = asyncio.get_running_loop().call_later(delay_s, _expire, conn)
        conn.send(mqtt.ConnAck(present, CONNACK_ACCEPTED))
        _LOGGER.info(
            "client connected client_id=%s session_present=%s keep_alive_s=%s",
            client_id,
            present,
            connect.keep_alive_s,
        )
        return conn

    async def _read_loop(self, conn: _Connection, reader: asyncio.StreamReader) -> None:
        keep_alive_s = conn.connect.keep_alive_s
        idle_limit_s = keep_alive_s * KEEP_ALIVE_GRACE if keep_alive_s else None
        while True:
            async with asyncio.timeout(idle_limit_s):
                packet = await mqtt.read_packet(
                    reader, max_bytes=self._max_packet_bytes
                )
            if isinstance(packet, mqtt.Disconnect):
                conn.clean_exit = True
                return
            await self._dispatch(conn, packet)
            await conn.writer.drain()

    async def _dispatch(self, conn: _Connection, packet: mqtt.Packet) -> None:
        match packet:
            case mqtt.Publish():
                await self._on_publish(conn, packet)
            case mqtt.Subscribe():
                self._on_subscribe(conn, packet)
            case mqtt.Unsubscribe():
                for name in packet.filters:
                    conn.subscriptions.pop(name, None)
                    self._store.remove_subscription(conn.principal.client_id, name)
                conn.send(mqtt.UnsubAck(packet.packet_id))
            case mqtt.PingReq():
                conn.send(mqtt.PingResp())
            case mqtt.PubAck():
                pass  # The hub sends at QoS 0; a stray PUBACK is harmless.
            case _:
                raise _Close(f"unexpected {type(packet).__name__} from client")

    async def _on_publish(self, conn: _Connection, publish: mqtt.Publish) -> None:
        if publish.qos == 2:
            # IoT Hub closes the connection on a QoS 2 PUBLISH (reference §3.5).
            raise _Close(f"QoS 2 publish to {publish.topic!r} is not supported")
        assert self._endpoint is not None
        try:
            await self._endpoint.on_publish(conn.principal, publish, is_will=False)
        except AccessDenied as err:
            raise _Close(f"publish denied: {err}") from None
        except Throttled as err:
            raise _Close(f"throttled, no PUBACK: {err}") from None
        if publish.qos == 1 and publish.packet_id is not None:
            conn.send(mqtt.PubAck(publish.packet_id))

    def _on_subscribe(self, conn: _Connection, packet: mqtt.Subscribe) -> None:
        codes = [self._grant(conn, name, qos) for name, qos in packet.filters]
        conn.send(mqtt.SubAck(packet.packet_id, tuple(codes)))

    def _grant(self, conn: _Connection, topic_filter: str, qos: int) -> int:
        client_id = conn.principal.client_id
        assert self._endpoint is not None
        if not self._endpoint.may_subscribe(conn.principal, topic_filter):
            _LOGGER.warning(
                "subscribe denied client_id=%s filter=%s", client_id, topic_filter
            )
            return SUBACK_FAILURE
        if (
            topic_filter not in conn.subscriptions
            and len(conn.subscriptions) >= MAX_SUBSCRIPTIONS
        ):
            _LOGGER.warning(
                "subscribe denied, limit %s reached client_id=%s filter=%s",
                MAX_SUBSCRIPTIONS,
                client_id,
                topic_filter,
            )
            return SUBACK_FAILURE
        # IoT Hub grants QoS 1 when QoS 2 is asked for (reference §3.5).
        granted = min(qos, 1)
        conn.subscriptions[topic_filter] = granted
        self._store.set_subscription(client_id, topic_filter, granted)
        return granted

    async def _finish(
        self, conn: _Connection | None, writer: asyncio.StreamWriter
    ) -> None:
        if conn is not None:
            if conn.expiry is not None:
                conn.expiry.cancel()
            if self._live.get(conn.principal.client_id) is conn:
                del self._live[conn.principal.client_id]
                _LOGGER.info("client disconnected client_id=%s", _cid(conn))
            await self._send_will(conn)
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
            await writer.wait_closed()

    async def _send_will(self, conn: _Connection) -> None:
        will = conn.connect.will
        if will is None or conn.clean_exit:
            return
        assert self._endpoint is not None
        publish = mqtt.Publish(will.topic, will.payload, qos=min(will.qos, 1))
        with contextlib.suppress(AccessDenied):
            await self._endpoint.on_publish(conn.principal, publish, is_will=True)


def _expire(conn: _Connection) -> None:
    # IoT Hub drops a connection whose SAS token expires (error 401003).
    _LOGGER.info("token expired, closing client_id=%s", conn.principal.client_id)
    conn.abort()


def _cid(conn: _Connection | None) -> str:
    return "-" if conn is None else conn.principal.client_id
