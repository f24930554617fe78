import stat
from pathlib import Path

import pytest
from cryptography import x509

from devhub.errors import DevHubError, IdentityNotFound
from devhub.hub import DevHub
from tests.devhub.conftest import DEVICE_ID, MODULE_ID


def _sans(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(name.value) for name in names}


async def test_state_files_are_private(hub: DevHub) -> None:
    """Test modes of the state dir and key files."""
    modes = {
        name: stat.S_IMODE((hub.state_dir / name).stat().st_mode)
        for name in ("ca.key", "server.key")
    }

    assert modes == {"ca.key": 0o600, "server.key": 0o600}
    assert stat.S_IMODE(hub.state_dir.stat().st_mode) == 0o700


async def test_server_certificate_names_the_hub(hub: DevHub) -> None:
    """Test the SANs the SDK checks (GatewayHostName is an IP)."""
    assert _sans(hub.state_dir / "server.pem") == {
        "localhost",
        "devhub.local",
        hub.host,
        "127.0.0.1",
    }


async def test_restart_reuses_ca_and_keys(tmp_path: Path, hub_host: str) -> None:
    """Test that a second start on the same state dir restores everything."""
    async with DevHub(tmp_path, host=hub_host) as first:
        identity = first.ensure_module(DEVICE_ID, MODULE_ID)
        ca_pem, service_cs = first.ca_pem, first.service_connection_string

    async with DevHub(tmp_path, host=hub_host) as second:
        assert second.get_identity(DEVICE_ID, MODULE_ID) == identity
        assert (second.ca_pem, second.service_connection_string) == (ca_pem, service_cs)


async def test_new_bind_address_gets_a_new_server_cert(
    tmp_path: Path, hub_host: str
) -> None:
    """Test that moving a state dir to another address reissues the cert."""
    async with DevHub(tmp_path, host=hub_host) as first:
        ca_pem = first.ca_pem
    other = hub_host.rsplit(".", 1)[0] + ".253"

    async with DevHub(tmp_path, host=other) as second:
        assert second.ca_pem == ca_pem
        assert other in _sans(tmp_path / "server.pem")


async def test_offline_edits_apply_on_the_next_start(
    tmp_path: Path, hub_host: str
) -> None:
    """Test twin changes made while the hub is stopped."""
    hub = DevHub(tmp_path, host=hub_host)
    hub.ensure_module(DEVICE_ID, MODULE_ID)
    hub.update_module_twin(DEVICE_ID, MODULE_ID, {"properties": {"desired": {"a": 1}}})

    async with hub:
        twin = hub.get_module_twin(DEVICE_ID, MODULE_ID)

    assert twin["properties"]["desired"]["$version"] == 2  # type: ignore[index]


def test_host_must_be_loopback(tmp_path: Path) -> None:
    """Test that the hub refuses to bind anything but loopback."""
    with pytest.raises(DevHubError, match=r"'0\.0\.0\.0' is not a loopback IP address"):
        DevHub(tmp_path, host="0.0.0.0")


async def test_module_needs_its_device(hub: DevHub) -> None:
    """Test the registry refuses a module of an unknown device."""
    with pytest.raises(IdentityNotFound, match="device 'ghost' is not registered"):
        hub.add_module("ghost", "m")


async def test_connection_string_dials_the_bind_address(hub: DevHub) -> None:
    """Test that GatewayHostName carries the loopback address."""
    key = hub.get_identity(DEVICE_ID, MODULE_ID).primary_key

    text = hub.module_connection_string(DEVICE_ID, MODULE_ID)

    assert text == (
        f"HostName=devhub.local;DeviceId={DEVICE_ID};ModuleId={MODULE_ID};"
        f"SharedAccessKey={key};GatewayHostName={hub.host}"
    )
