import json
import time
from pathlib import Path

from devhub import mqtt_codec as mqtt
from devhub.hub import DevHub
from tests.devhub.conftest import (
    DEVICE_ID,
    MODULE_ID,
    OTHER_MODULE_ID,
    OpenClient,
    eventually,
    module_connect,
)

TWIN_RES = "$iothub/twin/res/#"


async def test_connack_accepts_a_valid_token(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """Test a CONNECT as the SDK sends it."""
    client = await raw_client()

    ack = await client.connect(module_connect(hub))

    assert ack == mqtt.ConnAck(False, 0)
    assert hub.connected_clients() == {f"{DEVICE_ID}/{MODULE_ID}"}


async def test_wrong_key_gets_connack_5(hub: DevHub, raw_client: OpenClient) -> None:
    """Test that a token signed with another key is refused."""
    client = await raw_client()
    other_key = hub.get_identity(DEVICE_ID, OTHER_MODULE_ID).primary_key

    ack = await client.connect(module_connect(hub, key=other_key))

    assert ack == mqtt.ConnAck(False, 5)
    assert await client.closed_by_hub()


async def test_secondary_key_is_accepted(hub: DevHub, raw_client: OpenClient) -> None:
    """Test that either identity key signs a valid token."""
    client = await raw_client()
    secondary = hub.get_identity(DEVICE_ID, MODULE_ID).secondary_key

    ack = await client.connect(module_connect(hub, key=secondary))

    assert ack.return_code == 0


async def test_token_for_another_module_is_refused(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """Test that client id and token resource must name the same module."""
    client = await raw_client()
    connect = module_connect(hub, OTHER_MODULE_ID)
    mismatched = mqtt.Connect(
        client_id=f"{DEVICE_ID}/{MODULE_ID}",
        clean_session=False,
        keep_alive_s=60,
        username=f"devhub.local/{DEVICE_ID}/{MODULE_ID}/?api-version=x",
        password=connect.password,
    )

    ack = await client.connect(mismatched)

    assert ack.return_code == 5


async def test_unsupported_protocol_level_gets_connack_1(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """Test that MQTT 5 (level 5) is refused with return code 1."""
    client = await raw_client()
    connect = module_connect(hub)
    mqtt5 = mqtt.Connect(connect.client_id, False, 60, "u", b"p", protocol_level=5)

    ack = await client.connect(mqtt5)

    assert ack.return_code == 1


async def test_new_connection_kicks_the_old_one(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """Test one live connection per client id."""
    first = await raw_client()
    await first.connect(module_connect(hub))
    second = await raw_client()

    await second.connect(module_connect(hub))

    assert await first.closed_by_hub()
    assert hub.connected_clients() == {f"{DEVICE_ID}/{MODULE_ID}"}


async def test_subscription_limit_and_qos_downgrade(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """Test QoS 2 granted as 1, foreign filters refused with 0x80."""
    client = await raw_client()
    await client.connect(module_connect(hub))
    filters = (
        (TWIN_RES, 2),
        ("$iothub/twin/PATCH/properties/desired/#", 0),
        (f"devices/{DEVICE_ID}/modules/{OTHER_MODULE_ID}/inputs/#", 1),
        ("#", 1),
    )

    await client.send(mqtt.Subscribe(1, filters))

    assert await client.receive() == mqtt.SubAck(1, (1, 0, 0x80, 0x80))


async def test_publish_to_another_modules_topic_closes_the_connection(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """Test publish access control."""
    client = await raw_client()
    await client.connect(module_connect(hub))
    topic = f"devices/{DEVICE_ID}/modules/{OTHER_MODULE_ID}/messages/events/"

    await client.send(mqtt.Publish(topic, b"x", qos=1, packet_id=1))

    assert await client.closed_by_hub()
    assert hub.telemetry(DEVICE_ID, OTHER_MODULE_ID) == []


async def test_qos2_publish_closes_the_connection(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """Test IoT Hub's refusal of QoS 2."""
    client = await raw_client()
    await client.connect(module_connect(hub))
    topic = f"devices/{DEVICE_ID}/modules/{MODULE_ID}/messages/events/"

    await client.send(mqtt.Publish(topic, b"x", qos=2, packet_id=1))

    assert await client.closed_by_hub()


async def test_malformed_packet_closes_only_that_connection(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """Test that one bad client does not affect another."""
    bad = await raw_client()
    await bad.connect(module_connect(hub))
    good = await raw_client()
    await good.connect(module_connect(hub, OTHER_MODULE_ID))

    await bad.send_raw(b"\x30\x03\x00\x05a")

    assert await bad.closed_by_hub()
    await good.send(mqtt.PingReq())
    assert await good.receive() == mqtt.PingResp()


async def test_silent_client_is_closed_after_keep_alive(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """Test keep-alive enforcement (closed after 1.5 periods of silence)."""
    client = await raw_client()
    await client.connect(module_connect(hub, keep_alive_s=1))

    assert await client.closed_by_hub()


async def test_connection_closes_when_its_token_expires(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """Test that a token's se ends the connection."""
    client = await raw_client()
    await client.connect(module_connect(hub, expiry=int(time.time()) + 1))

    assert await client.closed_by_hub()


async def test_twin_get_is_answered_only_when_subscribed(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """Test that twin responses need $iothub/twin/res/#."""
    client = await raw_client()
    await client.connect(module_connect(hub))
    await client.send(
        mqtt.Publish("$iothub/twin/GET/?$rid=1", b" ", qos=1, packet_id=1)
    )
    assert await client.receive() == mqtt.PubAck(1)
    await client.send(mqtt.Subscribe(2, ((TWIN_RES, 1),)))
    assert await client.receive() == mqtt.SubAck(2, (1,))

    await client.send(
        mqtt.Publish("$iothub/twin/GET/?$rid=2", b" ", qos=1, packet_id=3)
    )

    response = await client.receive()
    assert response == mqtt.Publish(
        "$iothub/twin/res/200/?$rid=2",
        json.dumps({"desired": {"$version": 1}, "reported": {"$version": 1}}).encode(),
    )


async def test_duplicate_reported_patch_is_applied_once(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """Test that a DUP re-send with the same $rid gets the same answer."""
    client = await raw_client()
    await client.connect(module_connect(hub))
    await client.send(mqtt.Subscribe(1, ((TWIN_RES, 1),)))
    await client.receive()
    topic = "$iothub/twin/PATCH/properties/reported/?$rid=7"
    await client.send(mqtt.Publish(topic, b'{"a": 1}', qos=1, packet_id=2))
    first = [await client.receive(), await client.receive()]

    await client.send(mqtt.Publish(topic, b'{"a": 1}', qos=1, dup=True, packet_id=2))

    second = [await client.receive(), await client.receive()]
    assert first == second
    assert mqtt.Publish("$iothub/twin/res/204/?$rid=7&$version=2", b"") in first
    twin = hub.get_module_twin(DEVICE_ID, MODULE_ID)
    assert twin["properties"]["reported"]["$version"] == 2  # type: ignore[index]


async def test_will_is_stored_as_telemetry_on_abrupt_close(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """Test that a will on the telemetry topic is kept when a client dies."""
    client = await raw_client()
    connect = module_connect(hub)
    topic = f"devices/{DEVICE_ID}/modules/{MODULE_ID}/messages/events/"
    will = mqtt.Will(topic, b"gone", 1, False)
    await client.connect(
        mqtt.Connect(
            connect.client_id, False, 60, connect.username, connect.password, will
        )
    )

    hub.drop_connections(DEVICE_ID, MODULE_ID)

    messages = await eventually(
        lambda: hub.telemetry(DEVICE_ID, MODULE_ID), what="will stored"
    )
    assert messages[0]["properties"] == {"iothub-MessageType": "Will"}  # type: ignore[index]


async def test_clean_session_clears_stored_subscriptions(
    hub: DevHub, raw_client: OpenClient, tmp_path: Path
) -> None:
    """Test that CleanSession=1 starts without the old subscriptions."""
    client = await raw_client()
    await client.connect(module_connect(hub))
    await client.send(mqtt.Subscribe(1, ((TWIN_RES, 1),)))
    await client.receive()
    await client.send(mqtt.Disconnect())
    again = await raw_client()

    ack = await again.connect(module_connect(hub, clean_session=True))
    await again.send(mqtt.Publish("$iothub/twin/GET/?$rid=1", b" ", qos=1, packet_id=1))

    assert ack == mqtt.ConnAck(False, 0)
    assert await again.receive() == mqtt.PubAck(1)
    await again.send(mqtt.PingReq())
    assert await again.receive() == mqtt.PingResp()
