import asyncio

import pytest

from devhub import mqtt_codec as mqtt

ROUND_TRIP = [
    mqtt.Connect(
        "d/m", clean_session=False, keep_alive_s=60, username="u", password=b"p"
    ),
    mqtt.Connect(
        "d", clean_session=True, keep_alive_s=0, will=mqtt.Will("t", b"x", 1, False)
    ),
    mqtt.ConnAck(True, 0),
    mqtt.Publish("a/b", b"payload"),
    mqtt.Publish("a/b", b"", qos=1, dup=True, retain=True, packet_id=7),
    mqtt.PubAck(65535),
    mqtt.Subscribe(3, (("a/#", 1), ("b/+", 2))),
    mqtt.SubAck(3, (1, 0x80)),
    mqtt.Unsubscribe(4, ("a/#",)),
    mqtt.UnsubAck(4),
    mqtt.PingReq(),
    mqtt.PingResp(),
    mqtt.Disconnect(),
]


@pytest.mark.parametrize("packet", ROUND_TRIP, ids=lambda p: type(p).__name__)
def test_encode_then_decode_gives_the_packet_back(packet: mqtt.Packet) -> None:
    """Test that every packet survives an encode/decode round trip."""
    data = mqtt.encode(packet)

    decoded = mqtt.decode(data[0], data[2:] if len(data) < 129 else data[3:])

    assert decoded == packet


def test_remaining_length_uses_several_bytes_for_large_packets() -> None:
    """Test the variable-length encoding of a 200-byte payload (§2.2.3)."""
    data = mqtt.encode(mqtt.Publish("t", b"x" * 200))

    assert data[1:3] == bytes([(203 % 128) | 0x80, 203 // 128])


MALFORMED = {
    "unknown type 0": (0x00, b""),
    "subscribe flags": (0x80, b"\x00\x01\x00\x01a\x01"),
    "publish qos 3": (0x36, b"\x00\x01a\x00\x01"),
    "publish wildcard": (0x30, b"\x00\x03a/#"),
    "publish packet id 0": (0x32, b"\x00\x01a\x00\x00"),
    "subscribe without filters": (0x82, b"\x00\x01"),
    "subscribe qos 3": (0x82, b"\x00\x01\x00\x01a\x03"),
    "connect reserved flag": (0x10, b"\x00\x04MQTT\x04\x01\x00\x3c\x00\x01c"),
    "connect password without username": (
        0x10,
        b"\x00\x04MQTT\x04\x40\x00\x3c\x00\x01c\x00\x01p",
    ),
    "string not utf-8": (0x30, b"\x00\x01\xff"),
    "string with nul": (0x30, b"\x00\x01\x00"),
    "truncated field": (0x30, b"\x00\x05ab"),
    "pingreq trailing bytes": (0xC0, b"\x00"),
    "qos 2 pubrel": (0x62, b"\x00\x01"),
}


@pytest.mark.parametrize(("first", "body"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_packets_are_refused(first: int, body: bytes) -> None:
    """Test that wire-format violations raise MalformedPacket."""
    with pytest.raises(mqtt.MalformedPacket):
        mqtt.decode(first, body)


async def test_read_packet_refuses_an_oversized_packet_before_reading_it() -> None:
    """Test that the length is checked before the body is awaited."""
    reader = asyncio.StreamReader()
    reader.feed_data(mqtt.encode(mqtt.Publish("t", b"x" * 100))[:4])

    with pytest.raises(mqtt.PacketTooLarge, match="exceeds 50"):
        await mqtt.read_packet(reader, max_bytes=50)


async def test_read_packet_refuses_a_five_byte_length() -> None:
    """Test that a remaining length longer than four bytes is malformed."""
    reader = asyncio.StreamReader()
    reader.feed_data(b"\x30\xff\xff\xff\xff\x01")

    with pytest.raises(mqtt.MalformedPacket, match="more than four bytes"):
        await mqtt.read_packet(reader, max_bytes=1 << 30)


async def test_read_packet_reads_consecutive_packets() -> None:
    """Test that packets are split correctly from one stream."""
    reader = asyncio.StreamReader()
    reader.feed_data(mqtt.encode(mqtt.PingReq()) + mqtt.encode(mqtt.PubAck(9)))

    first = await mqtt.read_packet(reader, max_bytes=100)
    second = await mqtt.read_packet(reader, max_bytes=100)

    assert (first, second) == (mqtt.PingReq(), mqtt.PubAck(9))
