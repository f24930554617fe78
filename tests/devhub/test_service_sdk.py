"""The real ``azure-iot-hub`` service SDK against the dev hub's REST API.

``azure-iot-hub`` is not a pitwin dependency (it pulls in uamqp, a native
AMQP library, and imports ``six`` without declaring it), so these tests are
skipped where it is not installed.
"""

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest

from devhub.hub import DevHub
from tests.devhub.conftest import DEVICE_ID, MODULE_ID

iothub = pytest.importorskip("azure.iot.hub", reason="azure-iot-hub not installed")
models = pytest.importorskip("azure.iot.hub.models")

pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <(socket.socket|function _SelectorTransport)"
    ":pytest.PytestUnraisableExceptionWarning"
)


@pytest.fixture
async def registry(hub: DevHub, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """An IoTHubRegistryManager pointed at the hub's service port."""
    # requests trusts this bundle; the SDK has no option of its own (§10.1).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(hub.ca_path))
    # The SDK builds "https://" + HostName, so HostName carries host and port.
    key = hub.service_connection_string.rpartition("SharedAccessKey=")[2]
    connection_string = (
        f"HostName={hub.host}:{hub.service_port};"
        f"SharedAccessKeyName=iothubowner;SharedAccessKey={key}"
    )
    manager = iothub.IoTHubRegistryManager.from_connection_string(connection_string)
    yield manager
    manager.protocol.close()
    # requests keeps connections alive; aiohttp's shutdown leaves their TLS
    # sockets to the garbage collector. Stop the hub and collect them here,
    # so the filter below catches the warning in this module's tests.
    await hub.stop()
    gc.collect()


async def test_service_sdk_manages_identities(hub: DevHub, registry: Any) -> None:
    """Test create, read and delete of a device and a module via the SDK."""
    primary, secondary = hub.get_identity(DEVICE_ID).primary_key, "c2Vjb25k"

    device = await asyncio.to_thread(
        registry.create_device_with_sas, "sdk-dev", primary, secondary, "enabled"
    )
    module = await asyncio.to_thread(
        registry.create_module_with_sas, "sdk-dev", "m", None, primary, secondary
    )
    modules = await asyncio.to_thread(registry.get_modules, "sdk-dev")
    await asyncio.to_thread(registry.delete_module, "sdk-dev", "m")
    await asyncio.to_thread(registry.delete_device, "sdk-dev")

    assert device.device_id == "sdk-dev"
    assert module.authentication.symmetric_key.secondary_key == secondary
    assert [m.module_id for m in modules] == ["m"]
    assert hub.core.store.get_identity("sdk-dev", None) is None


async def test_service_sdk_updates_and_replaces_twins(
    hub: DevHub, registry: Any
) -> None:
    """Test PATCH and PUT of a module twin with the SDK's If-Match "*"."""
    twin_model = models.Twin
    properties = models.TwinProperties

    patched = await asyncio.to_thread(
        registry.update_module_twin,
        DEVICE_ID,
        MODULE_ID,
        twin_model(tags={"room": "lab"}, properties=properties(desired={"a": 1})),
    )
    replaced = await asyncio.to_thread(
        registry.replace_module_twin,
        DEVICE_ID,
        MODULE_ID,
        twin_model(properties=properties(desired={"b": 2})),
    )

    assert patched.tags == {"room": "lab"}
    assert patched.properties.desired["$version"] == 2
    assert replaced.properties.desired["b"] == 2
    assert "a" not in replaced.properties.desired
    assert replaced.properties.desired["$version"] == 3


async def test_service_sdk_method_to_offline_module_is_404(
    hub: DevHub, registry: Any
) -> None:
    """Test that the SDK sees 404 for a method call to an offline module."""
    request = models.CloudToDeviceMethod(
        method_name="ping", payload={}, response_timeout_in_seconds=5
    )

    with pytest.raises(Exception, match="Not Found") as caught:
        await asyncio.to_thread(
            registry.invoke_device_module_method, DEVICE_ID, MODULE_ID, request
        )

    assert caught.value.response.status_code == 404  # type: ignore[attr-defined]
