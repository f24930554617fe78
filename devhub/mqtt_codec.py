"""MQTT 3.1.1 packets: decode what clients send, encode what the hub sends.

Section numbers below refer to the OASIS MQTT Version 3.1.1 standard.
"""

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

PROTOCOL_NAME = "MQTT"
PROTOCOL_LEVEL = 4
# Four bytes of variable-length encoding hold at most this value (§2.2.3).
MAX_REMAINING_LENGTH = 268_435_455


class MalformedPacket(ValueError):
    """A packet breaks the MQTT 3.1.1 wire format."""


class PacketTooLarge(MalformedPacket):
    """A packet is longer than the hub accepts."""


class PacketType(IntEnum):
    """Control packet types, the high nibble of the first byte (§2.2.1)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


@dataclass(frozen=True, slots=True)
class Will:
    """The last-will message of a CONNECT."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class Connect:
    """A CONNECT packet (§3.1)."""

    client_id: str
    clean_session: bool
    keep_alive_s: int
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    protocol_name: str = PROTOCOL_NAME
    protocol_level: int = PROTOCOL_LEVEL


@dataclass(frozen=True, slots=True)
class ConnAck:
    """A CONNACK packet (§3.2)."""

    session_present: bool
    return_code: int


@dataclass(frozen=True, slots=True)
class Publish:
    """A PUBLISH packet (§3.3); ``packet_id`` is None at QoS 0."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None


@dataclass(frozen=True, slots=True)
class PubAck:
    """A PUBACK packet (§3.4)."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class Subscribe:
    """A SUBSCRIBE packet (§3.8): (topic filter, requested QoS) pairs."""

    packet_id: int
    filters: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class SubAck:
    """A SUBACK packet (§3.9); 0x80 in ``return_codes`` is a failure."""

    packet_id: int
    return_codes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """An UNSUBSCRIBE packet (§3.10)."""

    packet_id: int
    filters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UnsubAck:
    """An UNSUBACK packet (§3.11)."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class PingReq:
    """A PINGREQ packet (§3.12)."""


@dataclass(frozen=True, slots=True)
class PingResp:
    """A PINGRESP packet (§3.13)."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """A DISCONNECT packet (§3.14)."""


Packet = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
)


async def read_packet(reader: asyncio.StreamReader, *, max_bytes: int) -> Packet:
    """Read and decode one packet from ``reader``.

    Args:
        reader: The connection's stream.
        max_bytes: Largest remaining length accepted.

    Raises:
        MalformedPacket: The bytes are not a valid packet.
        PacketTooLarge: The remaining length exceeds ``max_bytes``.
        asyncio.IncompleteReadError: The peer closed mid-packet.
    """
    first = (await reader.readexactly(1))[0]
    length = 0
    for shift in range(0, 28, 7):
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
    else:
        raise MalformedPacket("remaining length uses more than four bytes")
    if length > max_bytes:
        raise PacketTooLarge(f"packet of {length} bytes exceeds {max_bytes}")
    return decode(first, await reader.readexactly(length))


def decode(first: int, body: bytes) -> Packet:
    """Decode a packet from its first byte and its remaining bytes.

    Raises:
        MalformedPacket: The bytes are not a valid packet.
    """
    try:
        kind = PacketType(first >> 4)
    except ValueError:
        raise MalformedPacket(f"unknown packet type {first >> 4}") from None
    flags = first & 0x0F
    if kind is PacketType.PUBLISH:
        return _decode_publish(flags, _Cursor(body))
    # Every other type has fixed flags (§2.2.2, table 2.2).
    expected = 0b0010 if kind in _FLAG_TWO else 0
    if flags != expected:
        raise MalformedPacket(f"{kind.name} has reserved flags {flags:#06b}")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise MalformedPacket(f"{kind.name} is not supported by the hub")
    cursor = _Cursor(body)
    packet = decoder(cursor)
    cursor.expect_end(kind)
    return packet


def encode(packet: Packet) -> bytes:
    """Encode ``packet`` with its fixed header."""
    first, body = _encode_body(packet)
    return bytes([first]) + _varint(len(body)) + body


def _encode_body(packet: Packet) -> tuple[int, bytes]:
    match packet:
        case Connect():
            return 0x10, _encode_connect(packet)
        case ConnAck(session_present=present, return_code=code):
            return 0x20, bytes([int(present), code])
        case Publish():
            return _encode_publish(packet)
        case PubAck(packet_id=pid):
            return 0x40, _u16(pid)
        case Subscribe(packet_id=pid, filters=filters):
            items = b"".join(_str(name) + bytes([qos]) for name, qos in filters)
            return 0x82, _u16(pid) + items
        case SubAck(packet_id=pid, return_codes=codes):
            return 0x90, _u16(pid) + bytes(codes)
        case Unsubscribe(packet_id=pid, filters=names):
            return 0xA2, _u16(pid) + b"".join(_str(name) for name in names)
        case UnsubAck(packet_id=pid):
            return 0xB0, _u16(pid)
        case PingReq():
            return 0xC0, b""
        case PingResp():
            return 0xD0, b""
        case Disconnect():
            return 0xE0, b""
    raise TypeError(f"cannot encode {packet!r}")


def _encode_connect(packet: Connect) -> bytes:
    flags = 0x02 if packet.clean_session else 0
    payload = _str(packet.client_id)
    if packet.will is not None:
        flags |= 0x04 | packet.will.qos << 3 | (0x20 if packet.will.retain else 0)
        payload += _str(packet.will.topic) + _bin(packet.will.payload)
    if packet.username is not None:
        flags |= 0x80
        payload += _str(packet.username)
    if packet.password is not None:
        flags |= 0x40
        payload += _bin(packet.password)
    header = _str(packet.protocol_name) + bytes([packet.protocol_level, flags])
    return header + _u16(packet.keep_alive_s) + payload


def _encode_publish(packet: Publish) -> tuple[int, bytes]:
    first = 0x30 | packet.qos << 1 | int(packet.retain) | (0x08 if packet.dup else 0)
    body = _str(packet.topic)
    if packet.qos:
        body += _u16(packet.packet_id or 0)
    return first, body + packet.payload


def _decode_connect(cursor: "_Cursor") -> Connect:
    name = cursor.string()
    level = cursor.byte()
    flags = cursor.byte()
    keep_alive_s = cursor.u16()
    if flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag is set")
    if flags & 0x40 and not flags & 0x80:
        raise MalformedPacket("CONNECT has a password without a username")
    client_id = cursor.string()
    will = None
    if flags & 0x04:
        will_qos = flags >> 3 & 0x03
        if will_qos > 2:
            raise MalformedPacket("CONNECT will QoS is 3")
        will_topic = cursor.string()
        will = Will(will_topic, cursor.binary(), will_qos, bool(flags & 0x20))
    elif flags & 0x38:
        raise MalformedPacket("CONNECT sets will QoS or retain without a will")
    username = cursor.string() if flags & 0x80 else None
    password = cursor.binary() if flags & 0x40 else None
    return Connect(
        client_id=client_id,
        clean_session=bool(flags & 0x02),
        keep_alive_s=keep_alive_s,
        username=username,
        password=password,
        will=will,
        protocol_name=name,
        protocol_level=level,
    )


def _decode_publish(flags: int, cursor: "_Cursor") -> Publish:
    qos = flags >> 1 & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH has QoS 3")
    topic = cursor.string()
    if not topic or "+" in topic or "#" in topic:
        raise MalformedPacket(f"PUBLISH topic {topic!r} is empty or has wildcards")
    packet_id = cursor.packet_id() if qos else None
    return Publish(
        topic=topic,
        payload=cursor.rest(),
        qos=qos,
        retain=bool(flags & 0x01),
        dup=bool(flags & 0x08),
        packet_id=packet_id,
    )


def _decode_subscribe(cursor: "_Cursor") -> Subscribe:
    packet_id = cursor.packet_id()
    filters: list[tuple[str, int]] = []
    while not cursor.at_end():
        name = cursor.string()
        qos = cursor.byte()
        if qos > 2:
            raise MalformedPacket(f"SUBSCRIBE requests QoS byte {qos:#04x}")
        filters.append((name, qos))
    if not filters:
        raise MalformedPacket("SUBSCRIBE has no topic filters")
    return Subscribe(packet_id, tuple(filters))


def _decode_unsubscribe(cursor: "_Cursor") -> Unsubscribe:
    packet_id = cursor.packet_id()
    names: list[str] = []
    while not cursor.at_end():
        names.append(cursor.string())
    if not names:
        raise MalformedPacket("UNSUBSCRIBE has no topic filters")
    return Unsubscribe(packet_id, tuple(names))


def _decode_connack(cursor: "_Cursor") -> ConnAck:
    return ConnAck(bool(cursor.byte() & 0x01), cursor.byte())


def _decode_suback(cursor: "_Cursor") -> SubAck:
    packet_id = cursor.packet_id()
    return SubAck(packet_id, tuple(cursor.rest()))


class _Cursor:
    """Reads MQTT primitive types from a packet body."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._pos = 0

    def take(self, count: int) -> bytes:
        if self._pos + count > len(self._body):
            raise MalformedPacket("packet ends inside a field")
        chunk = self._body[self._pos : self._pos + count]
        self._pos += count
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack("!H", self.take(2))[0]
        return value

    def packet_id(self) -> int:
        value = self.u16()
        if value == 0:
            raise MalformedPacket("packet identifier is 0")
        return value

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        # §1.5.3: UTF-8, and U+0000 is not allowed.
        try:
            text = self.binary().decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket("string is not valid UTF-8") from None
        if "\x00" in text:
            raise MalformedPacket("string contains U+0000")
        return text

    def rest(self) -> bytes:
        return self.take(len(self._body) - self._pos)

    def at_end(self) -> bool:
        return self._pos == len(self._body)

    def expect_end(self, kind: PacketType) -> None:
        if not self.at_end():
            raise MalformedPacket(f"{kind.name} has trailing bytes")


_FLAG_TWO = {PacketType.PUBREL, PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE}
_DECODERS: dict[PacketType, Callable[[_Cursor], Packet]] = {
    PacketType.CONNECT: _decode_connect,
    PacketType.CONNACK: _decode_connack,
    PacketType.PUBACK: lambda cursor: PubAck(cursor.packet_id()),
    PacketType.SUBSCRIBE: _decode_subscribe,
    PacketType.SUBACK: _decode_suback,
    PacketType.UNSUBSCRIBE: _decode_unsubscribe,
    PacketType.UNSUBACK: lambda cursor: UnsubAck(cursor.packet_id()),
    PacketType.PINGREQ: lambda cursor: PingReq(),
    PacketType.PINGRESP: lambda cursor: PingResp(),
    PacketType.DISCONNECT: lambda cursor: Disconnect(),
}


def _varint(value: int) -> bytes:
    if value > MAX_REMAINING_LENGTH:
        raise ValueError(f"remaining length {value} exceeds {MAX_REMAINING_LENGTH}")
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _u16(value: int) -> bytes:
    return struct.pack("!H", value)


def _bin(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError(f"field of {len(data)} bytes exceeds 65535")
    return _u16(len(data)) + data


def _str(text: str) -> bytes:
    return _bin(text.encode("utf-8"))
