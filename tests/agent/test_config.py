import base64
import os
import secrets
import textwrap
from pathlib import Path

import pytest

from agent.config import load_config
from agent.errors import ConfigError

GOOD_TEMPLATE = """
[device]
id = "pi-1"
hub_hostname = "myhub.azure-devices.net"

[modules.light]
driver = "simulated-light"
key = "{key}"

[modules.light.properties]
sample_interval_s = 15

[modules.soil]
kind = "moisture"
driver = "simulated-moisture"
key = "{key}"
"""
# A fresh key per run: no secret, not even a fake one, sits in the repo.
KEY = base64.b64encode(secrets.token_bytes(32)).decode()
GOOD = GOOD_TEMPLATE.replace("{key}", KEY)


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "pitwin.toml"
    path.write_text(textwrap.dedent(text))
    os.chmod(path, mode)
    return path


def test_good_config_loads_with_defaults(tmp_path: Path) -> None:
    """Test that a minimal config gives modules, kinds and default settings."""
    config = load_config(write(tmp_path, GOOD))

    assert config.device_id == "pi-1"
    assert config.modules["light"].kind == "light"
    assert config.modules["soil"].kind == "moisture"
    assert config.modules["light"].properties == {"sample_interval_s": 15.0}
    assert config.state_dir == tmp_path / "state"
    assert config.link.backoff_cap_s == 300.0


def test_connection_string_names_module_and_gateway(tmp_path: Path) -> None:
    """Test that the connection string carries the ids and the gateway."""
    text = GOOD.replace(
        'hub_hostname = "myhub.azure-devices.net"',
        'hub_hostname = "h"\ngateway_host = "127.0.0.1"',
    )
    config = load_config(write(tmp_path, text))

    cs = config.connection_string(config.modules["soil"])

    assert cs == (
        "HostName=h;DeviceId=pi-1;ModuleId=soil;"
        f"SharedAccessKey={KEY};GatewayHostName=127.0.0.1"
    )


def test_key_is_not_in_repr(tmp_path: Path) -> None:
    """Test that printing a module config does not show its key."""
    config = load_config(write(tmp_path, GOOD))

    assert KEY not in repr(config.modules["light"])


@pytest.mark.parametrize("mode", [0o644, 0o606], ids=["world-readable", "world-rw"])
def test_config_with_keys_readable_by_others_is_refused(
    tmp_path: Path, mode: int
) -> None:
    """Test that a key file others can read is refused with the fix."""
    path = write(tmp_path, GOOD, mode)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert str(caught.value) == (
        f"config file {path} holds module keys and is readable by others "
        f"(mode {mode:04o}); run: chmod 640 {path}"
    )


def test_group_readable_config_is_accepted(tmp_path: Path) -> None:
    """Test that mode 640 (service group may read) is fine."""
    assert load_config(write(tmp_path, GOOD, 0o640)).device_id == "pi-1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("[device]", "[device]\ncolour = 1"),
            "[device] has unknown key 'colour'; allowed keys are ca_file, "
            "gateway_host, hub_hostname, id, state_dir",
        ),
        (
            ('id = "pi-1"', 'id = "pi 1"'),
            "[device] id = 'pi 1' is not allowed; use letters, digits and '-' "
            "(at most 128)",
        ),
        (
            ("sample_interval_s = 15", "sample_interval_s = 0"),
            "[modules.light.properties] sample_interval_s: 0 is out of range; "
            "use a value from 0.1 to 86400",
        ),
        (
            ("sample_interval_s = 15", "speed = 3"),
            "[modules.light.properties] property 'speed' is not known; "
            "use one of enabled, "
            "location, lux_change_to_report, resolution, sample_interval_s, "
            "samples_per_reading",
        ),
        (
            ('kind = "moisture"', 'kind = "sound"'),
            "[modules.soil] kind 'sound' is not known; set kind to one of light, "
            "moisture, temperature",
        ),
    ],
    ids=["unknown-key", "bad-id", "bad-property", "unknown-property", "bad-kind"],
)
def test_bad_config_is_refused_with_the_fix(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    """Test that each config mistake gives one line naming it and the fix."""
    path = write(tmp_path, GOOD.replace(*change, 1))

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert str(caught.value) == message


def test_missing_file_says_which(tmp_path: Path) -> None:
    """Test that a missing config file names the path."""
    with pytest.raises(ConfigError, match="not found; pass --config"):
        load_config(tmp_path / "nope.toml")


def test_ca_file_must_hold_a_certificate(tmp_path: Path) -> None:
    """Test that a ca_file without a PEM certificate is refused."""
    (tmp_path / "ca.pem").write_text("hello")
    text = GOOD.replace(
        'hub_hostname = "myhub.azure-devices.net"',
        'hub_hostname = "h"\nca_file = "ca.pem"',
    )

    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        load_config(write(tmp_path, text))


def test_key_that_is_not_base64_is_refused(tmp_path: Path) -> None:
    """Test that a mangled key is caught when the file is read, not at connect."""
    text = GOOD.replace(f'key = "{KEY}"', 'key = "not base64!!"', 1)

    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))

    assert str(caught.value) == (
        "[modules.light] key is not base64; paste the module identity's primary "
        "key (the SharedAccessKey= part of its connection string)"
    )


def test_group_writable_config_with_keys_is_refused(tmp_path: Path) -> None:
    """Test that a key file its group could rewrite is refused with the fix."""
    path = write(tmp_path, GOOD, 0o660)

    with pytest.raises(ConfigError, match=r"its group may change them \(mode 0660\)"):
        load_config(path)
