"""The HTTPS service API, through the stdlib ServiceClient."""

import asyncio
import json
import stat
from pathlib import Path

import pytest

from devhub import mqtt_codec as mqtt
from devhub.client import ServiceClient, ServiceError, load_service_info
from devhub.errors import HubNotRunning
from devhub.hub import DevHub
from tests.devhub.conftest import DEVICE_ID, MODULE_ID, OpenClient, module_connect


@pytest.fixture
def service(hub: DevHub) -> ServiceClient:
    """A client built the way the CLI builds it, from service.json."""
    return ServiceClient.from_service_info(load_service_info(hub.state_dir))


async def test_service_json_tells_how_to_reach_the_hub(hub: DevHub) -> None:
    """Test the contents and mode of service.json."""
    path = hub.state_dir / "service.json"

    info = json.loads(path.read_text())

    assert info["url"] == f"https://{hub.host}:8443"
    assert info["mqtt_host"] == hub.host
    assert info["ca_path"] == str(hub.ca_path)
    assert info["connection_string"] == hub.service_connection_string
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_twin_patch_and_read_through_the_client(
    hub: DevHub, service: ServiceClient
) -> None:
    """Test PATCH with If-Match "*" and the service twin shape."""
    patch = {"properties": {"desired": {"interval_s": 5}}, "tags": {"room": "lab"}}

    twin = await asyncio.to_thread(
        service.update_module_twin, DEVICE_ID, MODULE_ID, patch
    )

    assert twin["tags"] == {"room": "lab"}
    assert twin["properties"]["desired"]["interval_s"] == 5  # type: ignore[index]
    assert twin["properties"]["desired"]["$version"] == 2  # type: ignore[index]
    assert (twin["deviceId"], twin["moduleId"], twin["version"]) == (
        DEVICE_ID,
        MODULE_ID,
        2,
    )
    read = await asyncio.to_thread(service.get_module_twin, DEVICE_ID, MODULE_ID)
    assert read == twin


async def test_registry_create_list_and_conflict(service: ServiceClient) -> None:
    """Test device and module creation, listing and 409 on duplicates."""
    created = await asyncio.to_thread(service.add_device, "pi2")
    module = await asyncio.to_thread(service.add_module, "pi2", "temp")

    with pytest.raises(ServiceError) as caught:
        await asyncio.to_thread(service.add_module, "pi2", "temp")

    assert created["deviceId"] == "pi2"
    assert module["authentication"]["type"] == "sas"  # type: ignore[index]
    assert caught.value.status == 409
    devices = await asyncio.to_thread(service.list_devices)
    modules = await asyncio.to_thread(service.list_modules, "pi2")
    assert [d["deviceId"] for d in devices] == [DEVICE_ID, "pi2"]  # type: ignore[index]
    assert [m["moduleId"] for m in modules] == ["temp"]  # type: ignore[index]


async def test_unknown_module_is_404_with_iothub_error_code(
    service: ServiceClient,
) -> None:
    """Test IoT Hub's error shape for an unknown identity."""
    with pytest.raises(ServiceError) as caught:
        await asyncio.to_thread(service.get_module_twin, DEVICE_ID, "nope")

    assert (caught.value.status, caught.value.error_code) == (404, "ModuleNotFound")
    assert "module 'nope' of device 'pi' is not registered" in str(caught.value)


async def test_bad_twin_patch_is_400(service: ServiceClient) -> None:
    """Test that a twin rule violation is a 400."""
    patch = {"properties": {"desired": {"a.b": 1}}}

    with pytest.raises(ServiceError) as caught:
        await asyncio.to_thread(service.update_module_twin, DEVICE_ID, MODULE_ID, patch)

    assert caught.value.status == 400


async def test_wrong_policy_key_is_401(hub: DevHub) -> None:
    """Test that the service API needs a SAS signed with the policy key."""
    forged = hub.service_connection_string.rsplit("=", 2)[0] + "=Zm9yZ2VkIGtleQ=="
    client = ServiceClient(hub.service_url, forged, hub.ca_path)

    with pytest.raises(ServiceError) as caught:
        await asyncio.to_thread(client.list_devices)

    assert caught.value.status == 401


async def test_missing_authorization_is_401(hub: DevHub) -> None:
    """Test a request with no Authorization header at all."""
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cafile=str(hub.ca_path))
    url = f"{hub.service_url}/devices?api-version=2021-04-12"

    with pytest.raises(urllib.error.HTTPError) as caught:
        await asyncio.to_thread(urllib.request.urlopen, url, context=context)

    assert caught.value.code == 401
    assert json.loads(caught.value.read())["Message"].startswith(
        "ErrorCode:IotHubUnauthorizedAccess;"
    )


async def test_telemetry_newest_last(
    hub: DevHub, service: ServiceClient, raw_client: OpenClient
) -> None:
    """Test the dev-hub telemetry path with its limit."""
    client = await raw_client()
    await client.connect(module_connect(hub))
    topic = f"devices/{DEVICE_ID}/modules/{MODULE_ID}/messages/events/%24.mid="
    for index in range(3):
        await client.send(mqtt.Publish(f"{topic}{index}", b"x", qos=1, packet_id=9))
        assert await client.receive() == mqtt.PubAck(9)

    messages = await asyncio.to_thread(service.telemetry, DEVICE_ID, MODULE_ID, limit=2)

    assert [m["message_id"] for m in messages] == ["1", "2"]  # type: ignore[index]


def test_load_service_info_without_a_hub(tmp_path: Path) -> None:
    """Test the error a user sees when no hub is running."""
    with pytest.raises(HubNotRunning, match=r"no dev hub is running: .* start one"):
        load_service_info(tmp_path)


async def test_stopped_hub_removes_service_json(hub: DevHub) -> None:
    """Test that service.json only exists while the hub runs."""
    await hub.stop()

    assert not (hub.state_dir / "service.json").exists()
