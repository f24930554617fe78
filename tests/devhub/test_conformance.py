"""Conformance: one test per documented IoT Hub behaviour the dev hub keeps.

Each docstring names the fact and its section in the IoT Hub reference
(``reference/iothub.md``). Twin scenarios run through both client kinds:
the real device SDK and plain paho-mqtt 1.x following IoT Hub's conventions.
"""

import asyncio
import gc
import json
import logging
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from devhub import auth, core
from devhub import mqtt_codec as mqtt
from devhub.client import ServiceClient, ServiceError, load_service_info
from devhub.errors import (
    DeviceNotOnline,
    MessageTooLarge,
    MethodTimeout,
    TooManyModules,
)
from devhub.faults import Faults
from devhub.hub import DevHub
from tests.devhub.conftest import (
    DEVICE_ID,
    HOSTNAME,
    MODULE_ID,
    OTHER_MODULE_ID,
    OpenClient,
    RawClient,
    module_connect,
)
from tests.devhub.twin_clients import CLIENT_KINDS, TwinClient, TwinRefused

OpenTwin = Callable[..., Awaitable[TwinClient]]


def _nested(levels: int) -> dict[str, Any]:
    """Return a patch whose objects nest ``levels`` deep (the patch is 1)."""
    patch: dict[str, Any] = {"leaf": 1}
    for level in range(levels - 1):
        patch = {f"l{level}": patch}
    return patch


@pytest.fixture(params=sorted(CLIENT_KINDS))
async def open_twin(
    request: pytest.FixtureRequest, hub: DevHub
) -> AsyncIterator[OpenTwin]:
    """Open module clients of one kind (SDK or paho); closed afterwards."""
    kind = CLIENT_KINDS[request.param]
    opened: list[TwinClient] = []

    async def open_client(module_id: str = MODULE_ID) -> TwinClient:
        client = await kind.open(hub, module_id)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.close()
    del opened[:]
    gc.collect()


@pytest.fixture
def service(hub: DevHub) -> ServiceClient:
    """The stdlib service client, configured from service.json."""
    return ServiceClient.from_service_info(load_service_info(hub.state_dir))


def _desired(hub: DevHub, patch: dict[str, Any]) -> dict[str, Any]:
    return hub.update_module_twin(
        DEVICE_ID, MODULE_ID, {"properties": {"desired": patch}}
    )


# --- Twins through both client kinds -------------------------------------


async def test_new_twin_starts_at_version_1(open_twin: OpenTwin) -> None:
    """A new module twin has desired and reported $version 1 (§1.4, §11.14)."""
    client = await open_twin()

    twin = await client.get_twin()

    assert twin == {"desired": {"$version": 1}, "reported": {"$version": 1}}


async def test_reported_patch_bumps_reported_version_only(
    hub: DevHub, open_twin: OpenTwin
) -> None:
    """Each reported change bumps reported $version; desired stays (§5.2)."""
    client = await open_twin()

    await client.patch_reported({"a": 1})
    await client.patch_reported({"a": 2, "b": {"c": 3}})

    twin = await client.get_twin()
    assert twin["reported"] == {"a": 2, "b": {"c": 3}, "$version": 3}
    assert twin["desired"] == {"$version": 1}


async def test_null_removes_a_reported_property(open_twin: OpenTwin) -> None:
    """A member set to null is removed, nested ones too (§5.3)."""
    client = await open_twin()
    await client.patch_reported({"a": 1, "b": {"c": 3, "d": 4}})

    await client.patch_reported({"a": None, "b": {"c": None}})

    twin = await client.get_twin()
    assert twin["reported"] == {"b": {"d": 4}, "$version": 3}


async def test_desired_patch_notifies_exactly_the_members_sent(
    hub: DevHub, open_twin: OpenTwin
) -> None:
    """A PATCH notifies the members sent, nulls included, and $version (§5.3)."""
    client = await open_twin()
    _desired(hub, {"x": 1, "y": 2})
    await client.next_desired_patch()

    _desired(hub, {"x": 1, "y": None})

    assert await client.next_desired_patch() == {"x": 1, "y": None, "$version": 3}
    assert (await client.get_twin())["desired"] == {"x": 1, "$version": 3}


async def test_replace_notifies_new_document_plus_nulls(
    hub: DevHub, open_twin: OpenTwin
) -> None:
    """A PUT notifies the new document plus null for removed keys (§5.3)."""
    client = await open_twin()
    _desired(hub, {"a": 1, "b": 2})
    await client.next_desired_patch()

    hub.replace_module_twin(
        DEVICE_ID, MODULE_ID, {"properties": {"desired": {"a": 1, "c": 100}}}
    )

    patch = await client.next_desired_patch()
    assert patch == {"a": 1, "b": None, "c": 100, "$version": 3}
    assert (await client.get_twin())["desired"] == {"a": 1, "c": 100, "$version": 3}


async def test_tags_never_reach_the_module(hub: DevHub, open_twin: OpenTwin) -> None:
    """Tags are service-side only: no notification, not in GET (§5.1)."""
    client = await open_twin()

    hub.update_module_twin(DEVICE_ID, MODULE_ID, {"tags": {"room": "lab"}})
    _desired(hub, {"x": 1})

    assert await client.next_desired_patch() == {"x": 1, "$version": 2}
    twin = await client.get_twin()
    assert "tags" not in twin
    assert "room" not in json.dumps(twin)


@pytest.mark.parametrize(
    ("patch", "rule"),
    [
        (
            _nested(11),
            "depth",
        ),
        ({"bad$key": 1}, "key character"),
        ({"k" * 1025: 1}, "key length"),
        ({"s": "x" * 4097}, "string length"),
        ({f"p{i}": "x" * 4000 for i in range(9)}, "section size"),
        ({"n": 2**53}, "integer range"),
        ({"arr": [1, 2]}, "array"),
    ],
)
async def test_reported_patch_breaking_a_limit_is_refused_400(
    open_twin: OpenTwin, patch: dict[str, Any], rule: str
) -> None:
    """A patch over a twin limit is refused 400, twin unchanged (§5.5)."""
    client = await open_twin()

    with pytest.raises(TwinRefused) as caught:
        await client.patch_reported(patch)

    assert caught.value.status == 400, rule
    assert (await client.get_twin())["reported"] == {"$version": 1}


async def test_throttled_twin_request_is_answered_429(
    hub: DevHub, open_twin: OpenTwin
) -> None:
    """A throttled twin request gets status 429 and is not applied (§9.3)."""
    client = await open_twin()
    hub.faults.twin_throttle_share = 1.0

    with pytest.raises(TwinRefused) as caught:
        await client.patch_reported({"a": 1})

    assert caught.value.status == 429
    hub.faults.twin_throttle_share = 0.0
    assert (await client.get_twin())["reported"] == {"$version": 1}


async def test_one_module_cannot_read_or_change_another_twin(
    hub: DevHub, open_twin: OpenTwin
) -> None:
    """Twin topics are scoped by the connection's identity (§3, §5.1)."""
    light = await open_twin(MODULE_ID)
    hub.update_module_twin(
        DEVICE_ID, OTHER_MODULE_ID, {"properties": {"desired": {"secret": 1}}}
    )

    await light.patch_reported({"mine": True})

    assert "secret" not in json.dumps(await light.get_twin())
    other = hub.get_module_twin(DEVICE_ID, OTHER_MODULE_ID)
    assert other["properties"]["reported"]["$version"] == 1  # type: ignore[index]
    assert "mine" not in other["properties"]["reported"]  # type: ignore[operator]


# --- Twins on the service side -------------------------------------------


async def test_metadata_stamps_every_change(hub: DevHub, open_twin: OpenTwin) -> None:
    """$metadata has $lastUpdated; desired also $lastUpdatedVersion (§5.2)."""
    client = await open_twin()
    await client.patch_reported({"r": {"s": 1}})
    _desired(hub, {"d": 1})

    props = hub.get_module_twin(DEVICE_ID, MODULE_ID)["properties"]

    desired_meta = props["desired"]["$metadata"]  # type: ignore[index]
    reported_meta = props["reported"]["$metadata"]  # type: ignore[index]
    assert desired_meta["d"]["$lastUpdatedVersion"] == 2
    assert desired_meta["$lastUpdated"].endswith("Z")
    assert set(reported_meta["r"]) == {"$lastUpdated", "s"}
    assert "$lastUpdatedVersion" not in reported_meta["r"]


async def test_service_patch_over_a_limit_is_400_with_iothub_error_body(
    hub: DevHub, service: ServiceClient
) -> None:
    """Limits refuse service writes with IoT Hub's error body (§5.5, §9.4)."""
    status, body = await asyncio.to_thread(
        _raw_request,
        hub,
        "PATCH",
        f"/twins/{DEVICE_ID}/modules/{MODULE_ID}",
        {"tags": {"t": "x" * 9000}},
    )

    assert status == 400
    assert body["Message"].startswith("ErrorCode:ArgumentInvalid;")
    assert "ErrorCode:400004" in body["ExceptionMessage"]
    assert hub.get_module_twin(DEVICE_ID, MODULE_ID)["version"] == 1


async def test_if_match_guards_twin_writes(hub: DevHub, service: ServiceClient) -> None:
    """If-Match: a stale etag is 412, the current one or "*" passes (§5.2)."""
    etag = str(hub.get_module_twin(DEVICE_ID, MODULE_ID)["etag"])
    path = f"/twins/{DEVICE_ID}/modules/{MODULE_ID}"
    patch = {"tags": {"a": 1}}

    fresh = await asyncio.to_thread(
        _raw_request, hub, "PATCH", path, patch, {"If-Match": f'"{etag}"'}
    )
    stale = await asyncio.to_thread(
        _raw_request, hub, "PUT", path, patch, {"If-Match": f'"{etag}"'}
    )
    star = await asyncio.to_thread(
        _raw_request, hub, "PUT", path, {"tags": {"b": 2}}, {"If-Match": '"*"'}
    )

    assert (fresh[0], stale[0], star[0]) == (200, 412, 200)
    assert "PreconditionFailed" in stale[1]["Message"]
    assert hub.get_module_twin(DEVICE_ID, MODULE_ID)["tags"] == {"b": 2}


async def test_if_match_guards_identity_delete(hub: DevHub) -> None:
    """DELETE with a stale If-Match is 412; the identity stays (§9.4)."""
    path = f"/devices/{DEVICE_ID}/modules/{MODULE_ID}"

    status, _ = await asyncio.to_thread(
        _raw_request, hub, "DELETE", path, None, {"If-Match": '"stale"'}
    )

    assert status == 412
    assert hub.get_identity(DEVICE_ID, MODULE_ID)


# --- Identity lifecycle ---------------------------------------------------


async def test_identities_have_primary_and_secondary_keys(
    service: ServiceClient,
) -> None:
    """Devices and modules get two SAS keys; both sign tokens (§1.4, §11.2)."""
    await asyncio.to_thread(service.add_device, "pi2")
    module = await asyncio.to_thread(service.add_module, "pi2", "m")

    keys = module["authentication"]["symmetricKey"]  # type: ignore[index]

    assert keys["primaryKey"]  # type: ignore[index]
    assert keys["secondaryKey"]  # type: ignore[index]
    assert keys["primaryKey"] != keys["secondaryKey"]  # type: ignore[index]


async def test_recreated_module_starts_again_at_version_1(
    hub: DevHub, service: ServiceClient
) -> None:
    """Deleting a module deletes its twin; a new one starts at 1 (§1.4)."""
    _desired(hub, {"x": 1})
    hub.update_module_twin(DEVICE_ID, MODULE_ID, {"tags": {"t": 1}})

    await asyncio.to_thread(service.delete_module, DEVICE_ID, MODULE_ID)
    with pytest.raises(ServiceError) as caught:
        await asyncio.to_thread(service.get_module_twin, DEVICE_ID, MODULE_ID)
    await asyncio.to_thread(service.add_module, DEVICE_ID, MODULE_ID)

    assert caught.value.status == 404
    twin = await asyncio.to_thread(service.get_module_twin, DEVICE_ID, MODULE_ID)
    assert twin["tags"] == {}
    assert twin["properties"]["desired"]["$version"] == 1  # type: ignore[index]


async def test_deleting_an_identity_closes_its_connection(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """A deleted identity's open connection is closed (§1.4, §9.4 404104)."""
    client = await raw_client()
    assert (await client.connect(module_connect(hub))).return_code == 0

    hub.delete_identity(DEVICE_ID)

    assert await client.closed_by_hub()
    assert hub.connected_clients() == set()


async def test_at_most_50_modules_per_device(hub: DevHub) -> None:
    """The 51st module of a device is refused 413003 (§0, §9.4)."""
    for index in range(48):  # The fixture's device has two modules.
        hub.add_module(DEVICE_ID, f"m{index}")

    with pytest.raises(TooManyModules) as caught:
        hub.add_module(DEVICE_ID, "one-too-many")

    assert (caught.value.http_status, caught.value.numeric_code) == (413, 413003)


# --- Direct methods -------------------------------------------------------


async def _method_listener(
    hub: DevHub, raw_client: OpenClient, *, subscribe: bool = True
) -> RawClient:
    client = await raw_client()
    await client.connect(module_connect(hub))
    if subscribe:
        await client.send(mqtt.Subscribe(1, (("$iothub/methods/POST/#", 1),)))
        await client.receive()
    return client


async def test_method_round_trip_on_iothub_topics(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """Request on methods/POST/{name}/?$rid, answer on methods/res (§6)."""
    client = await _method_listener(hub, raw_client)
    call = asyncio.create_task(
        hub.invoke_method(DEVICE_ID, MODULE_ID, "ping", {"n": 1}, timeout_s=5)
    )

    request = await client.receive()
    assert isinstance(request, mqtt.Publish)
    assert request.topic.startswith("$iothub/methods/POST/ping/?$rid=")
    assert json.loads(request.payload) == {"n": 1}
    rid = request.topic.partition("$rid=")[2]
    await client.send(mqtt.Publish(f"$iothub/methods/res/201/?$rid={rid}", b'"pong"'))

    assert await call == {"status": 201, "payload": "pong"}


async def test_method_to_an_offline_module_is_404103(hub: DevHub) -> None:
    """A method call to a module not connected is 404 DeviceNotOnline (§6)."""
    with pytest.raises(DeviceNotOnline) as caught:
        await hub.invoke_method(DEVICE_ID, MODULE_ID, "ping", timeout_s=5)

    assert (caught.value.http_status, caught.value.numeric_code) == (404, 404103)


async def test_method_to_an_unsubscribed_module_is_404(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """Connected but not subscribed to methods is also 404 (§6, §11.12)."""
    await _method_listener(hub, raw_client, subscribe=False)

    with pytest.raises(DeviceNotOnline):
        await hub.invoke_method(DEVICE_ID, MODULE_ID, "ping", timeout_s=5)


async def test_method_without_an_answer_is_504101(
    hub: DevHub, raw_client: OpenClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No answer within responseTimeoutInSeconds is 504 GatewayTimeout (§6)."""
    # The documented minimum is 5 s; a shorter one keeps the test fast.
    monkeypatch.setattr(core, "METHOD_TIMEOUT_S", (0.05, 300))
    await _method_listener(hub, raw_client)

    with pytest.raises(MethodTimeout) as caught:
        await hub.invoke_method(DEVICE_ID, MODULE_ID, "ping", timeout_s=0.1)

    assert (caught.value.http_status, caught.value.numeric_code) == (504, 504101)


@pytest.mark.parametrize("timeout_s", [4, 301])
async def test_method_timeout_outside_5_to_300_is_400(
    service: ServiceClient, timeout_s: int
) -> None:
    """ResponseTimeoutInSeconds must lie in 5..300 (§6)."""
    with pytest.raises(ServiceError) as caught:
        await asyncio.to_thread(
            service.invoke_method, DEVICE_ID, MODULE_ID, "ping", timeout_s=timeout_s
        )

    assert caught.value.status == 400


async def test_method_payload_over_128_kb_is_refused(hub: DevHub) -> None:
    """Method payloads are at most 128 KB (§6)."""
    with pytest.raises(MessageTooLarge):
        await hub.invoke_method(DEVICE_ID, MODULE_ID, "m", "x" * (128 * 1024))


# --- Service API ----------------------------------------------------------


async def test_service_api_needs_a_known_api_version(hub: DevHub) -> None:
    """REST calls carry api-version (2021-04-12 for the service SDK, §10.2)."""
    ok = await asyncio.to_thread(_raw_request, hub, "GET", "/devices", None)
    missing = await asyncio.to_thread(
        _raw_request, hub, "GET", "/devices", None, None, ""
    )

    assert (ok[0], missing[0]) == (200, 400)


async def test_service_api_needs_the_policy_key(hub: DevHub) -> None:
    """Service calls are signed with a shared access policy key (§10.1)."""
    token = auth.mint_sas_token(
        HOSTNAME, auth.new_key(), expiry=int(time.time()) + 60, key_name="iothubowner"
    )

    status, body = await asyncio.to_thread(
        _raw_request, hub, "GET", "/devices", None, {"Authorization": token}
    )

    assert status == 401
    assert "IotHubUnauthorizedAccess" in body["Message"]


# --- Access control and robustness ---------------------------------------


async def test_foreign_topics_are_refused_and_logged(
    hub: DevHub, raw_client: OpenClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A module uses only its own topics; others are refused (§3.2, §11.8)."""
    caplog.set_level(logging.WARNING, logger="devhub")
    client = await raw_client()
    await client.connect(module_connect(hub))
    other = f"devices/{DEVICE_ID}/modules/{OTHER_MODULE_ID}"

    await client.send(mqtt.Subscribe(1, ((f"{other}/inputs/#", 1),)))
    suback = await client.receive()
    await client.send(
        mqtt.Publish(f"{other}/messages/events/", b"x", qos=1, packet_id=2)
    )

    assert suback == mqtt.SubAck(1, (0x80,))
    assert await client.closed_by_hub()
    assert hub.telemetry(DEVICE_ID, OTHER_MODULE_ID) == []
    assert "subscribe denied" in caplog.text
    assert "publish denied" in caplog.text


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xf0\x00",  # reserved packet type 15
        b"\x30\xff\xff\xff\x7f",  # PUBLISH claiming 256 MB, over the limit
    ],
)
async def test_bad_packet_closes_only_that_connection(
    hub: DevHub, raw_client: OpenClient, garbage: bytes
) -> None:
    """A malformed or oversized packet closes its connection only (§11.8)."""
    bad, good = await raw_client(), await raw_client()
    await bad.connect(module_connect(hub))
    await good.connect(module_connect(hub, OTHER_MODULE_ID))

    await bad.send_raw(garbage)

    assert await bad.closed_by_hub()
    await good.send(mqtt.PingReq())
    assert await good.receive() == mqtt.PingResp()


async def test_restart_keeps_registry_twins_and_versions(
    tmp_path: Path, hub_host: str
) -> None:
    """Registry, twins and both $versions survive a restart (§11.3)."""
    async with DevHub(tmp_path / "h", host=hub_host, hostname=HOSTNAME) as first:
        first.ensure_module(DEVICE_ID, MODULE_ID)
        key = first.get_identity(DEVICE_ID, MODULE_ID).primary_key
        _desired(first, {"x": 1})
        before = first.get_module_twin(DEVICE_ID, MODULE_ID)

    async with DevHub(tmp_path / "h", host=hub_host, hostname=HOSTNAME) as second:
        after = second.get_module_twin(DEVICE_ID, MODULE_ID)
        assert second.get_identity(DEVICE_ID, MODULE_ID).primary_key == key

    assert after["properties"] == before["properties"]
    assert after["etag"] == before["etag"]


async def test_telemetry_is_kept_up_to_a_bound(tmp_path: Path, hub_host: str) -> None:
    """The hub keeps only the newest telemetry_keep messages (§7 retention)."""
    async with DevHub(
        tmp_path / "h", host=hub_host, hostname=HOSTNAME, telemetry_keep=3
    ) as small:
        small.ensure_module(DEVICE_ID, MODULE_ID)
        client = await _open(small)
        topic = f"devices/{DEVICE_ID}/modules/{MODULE_ID}/messages/events/"
        for number in range(5):
            await client.send(mqtt.Publish(topic, b"%d" % number, qos=1, packet_id=1))
            await client.receive()
        bodies = [m["body"] for m in small.telemetry(DEVICE_ID, MODULE_ID)]
        await client.close()

    assert bodies == ["2", "3", "4"]


# --- Fault knobs ----------------------------------------------------------


async def test_throttled_telemetry_closes_the_connection_without_puback(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """Throttled MQTT telemetry: no PUBACK, connection closed (§9.3, §2.4)."""
    client = await raw_client()
    await client.connect(module_connect(hub))
    hub.faults.telemetry_throttle_share = 1.0
    topic = f"devices/{DEVICE_ID}/modules/{MODULE_ID}/messages/events/"

    await client.send(mqtt.Publish(topic, b"x", qos=1, packet_id=7))

    assert await client.closed_by_hub()
    assert hub.telemetry(DEVICE_ID, MODULE_ID) == []


async def test_close_after_connack(hub: DevHub, raw_client: OpenClient) -> None:
    """The close_after_connack knob accepts, then closes the connection."""
    hub.faults.close_after_connack = 1
    client = await raw_client()

    assert (await client.connect(module_connect(hub))).return_code == 0
    assert await client.closed_by_hub()
    assert hub.faults.close_after_connack == 0


async def test_dropped_and_delayed_twin_responses(
    hub: DevHub, raw_client: OpenClient
) -> None:
    """drop_twin_responses loses one answer; the delay knob defers it."""
    client = await raw_client()
    await client.connect(module_connect(hub))
    await client.send(mqtt.Subscribe(1, (("$iothub/twin/res/#", 1),)))
    await client.receive()
    hub.faults.drop_twin_responses = 1
    hub.faults.twin_response_delay_s = 0.05

    for rid in ("1", "2"):
        await client.send(mqtt.Publish(f"$iothub/twin/GET/?$rid={rid}", b""))

    answer = await client.receive()
    assert isinstance(answer, mqtt.Publish)
    assert answer.topic == "$iothub/twin/res/200/?$rid=2"


def test_throttle_share_is_seeded_and_repeatable() -> None:
    """The same seed throttles the same requests, about the share asked."""
    first, second = Faults(seed=7), Faults(seed=7)
    first.twin_throttle_share = second.twin_throttle_share = 0.3

    picks = [first.roll("twin_throttle_share") for _ in range(1000)]

    assert picks == [second.roll("twin_throttle_share") for _ in range(1000)]
    assert 250 < sum(picks) < 350


# --- helpers --------------------------------------------------------------


async def _open(hub: DevHub) -> RawClient:
    context = ssl.create_default_context(cafile=str(hub.ca_path))
    reader, writer = await asyncio.open_connection(hub.host, hub.mqtt_port, ssl=context)
    client = RawClient(reader, writer)
    await client.connect(module_connect(hub))
    return client


def _raw_request(
    hub: DevHub,
    method: str,
    path: str,
    body: object,
    headers: dict[str, str] | None = None,
    api_version: str = "2021-04-12",
) -> tuple[int, Any]:
    """Send one HTTPS request to the service API; return status and JSON."""
    info = load_service_info(hub.state_dir)
    query = f"?api-version={api_version}" if api_version else ""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{info.url}{path}{query}", data, method=method)
    key = hub.service_connection_string.rpartition("SharedAccessKey=")[2]
    token = auth.mint_sas_token(
        HOSTNAME, key, expiry=int(time.time()) + 60, key_name="iothubowner"
    )
    request.add_header("Authorization", token)
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    context = ssl.create_default_context(cafile=str(info.ca_path))
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw else None
