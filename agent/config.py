"""The agent's TOML config file: device, hub, modules and their sensors.

Example::

    [device]
    id = "pi-greenhouse"
    hub_hostname = "myhub.azure-devices.net"
    state_dir = "/var/lib/pitwin"

    [modules.light]
    driver = "simulated-light"
    key = "<module primary key>"

    [modules.light.properties]
    sample_interval_s = 30
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agent.errors import ConfigError
from agent.properties import KINDS, Value, check_local

# IoT Hub allows more punctuation, but the SDK neither escapes it in SAS
# resource URIs nor in topics; plain names avoid both traps.
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,127}$")
_SECRET_KEYS = ("key", "connection_string")
_T = TypeVar("_T", "LinkConfig", "OutboxConfig")


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """How a module runner talks to the hub and recovers from failures.

    Attributes:
        backoff_base_s: First reconnect delay ceiling.
        backoff_cap_s: Largest reconnect delay ceiling.
        stable_after_s: How long a link must stay up before backoff resets.
        call_timeout_s: Deadline of each SDK call (connect, twin, send).
        keep_alive_s: MQTT keep-alive asked of the hub.
    """

    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    stable_after_s: float = 60.0
    call_timeout_s: float = 30.0
    keep_alive_s: int = 60


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """Where readings wait for the hub, and for how long.

    Attributes:
        commit_interval_s: How often the outbox is forced to the storage
            device; a power cut loses at most this much of readings.
        max_latency_s: Longest a reading waits for a pack to fill before it
            is sent anyway.
        max_rows: Readings kept per module while offline; the oldest go first.
        max_age_s: Readings older than this are dropped.
    """

    commit_interval_s: float = 5.0
    max_latency_s: float = 300.0
    max_rows: int = 100_000
    max_age_s: float = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class ModuleConfig:
    """One module identity and the sensor behind it.

    Attributes:
        module_id: The module identity's name in the hub.
        kind: Which writable properties it has (moisture, light, temperature).
        driver: Sensor driver name in the sensor registry.
        sensor: Options passed to the driver.
        properties: Writable property values set locally.
        key: The module's shared access key (base64).
    """

    module_id: str
    kind: str
    driver: str
    sensor: Mapping[str, Any]
    properties: Mapping[str, Value]
    key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The whole agent config.

    Attributes:
        device_id: The Pi's device identity.
        hub_hostname: The hub's HostName (``myhub.azure-devices.net``).
        gateway_host: Address dialled instead of the HostName, if set.
        ca_pem: PEM text of the only CA to trust, if set.
        state_dir: Where module state is kept.
        modules: Module configs by module id.
        link: Reconnect and deadline settings.
        outbox: Telemetry outbox settings.
    """

    device_id: str
    hub_hostname: str
    gateway_host: str | None
    ca_pem: str | None
    state_dir: Path
    modules: Mapping[str, ModuleConfig]
    link: LinkConfig = LinkConfig()
    outbox: OutboxConfig = OutboxConfig()

    def connection_string(self, module: ModuleConfig) -> str:
        """Return the module connection string the SDK expects."""
        parts = [
            f"HostName={self.hub_hostname}",
            f"DeviceId={self.device_id}",
            f"ModuleId={module.module_id}",
            f"SharedAccessKey={module.key}",
        ]
        if self.gateway_host:
            parts.append(f"GatewayHostName={self.gateway_host}")
        return ";".join(parts)


def load_config(path: Path) -> AgentConfig:
    """Read, check and return the config file at ``path``.

    Raises:
        ConfigError: The file is missing, unsafe or wrong; the message says
            what to change.
    """
    try:
        raw_bytes = path.read_bytes()
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found; pass --config with the right path"
        ) from None
    except PermissionError:
        raise ConfigError(
            f"config file {path} is not readable by this user; "
            "run as a member of the file's group"
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"config file {path} is a directory; pass the TOML file inside it"
        ) from None
    except OSError as err:
        raise ConfigError(
            f"config file {path} cannot be read: {err.strerror}"
        ) from None
    try:
        raw = tomllib.loads(raw_bytes.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    if _holds_secrets(raw):
        _check_private(path, mode)
    return parse_config(raw, base_dir=path.parent)


def parse_config(raw: Mapping[str, Any], *, base_dir: Path) -> AgentConfig:
    """Build an :class:`AgentConfig` from parsed TOML.

    Args:
        raw: The parsed document.
        base_dir: Relative paths in the file are taken from here.

    Raises:
        ConfigError: A section, key or value is wrong.
    """
    _only(raw, {"device", "modules", "link", "outbox"}, "top level")
    device = _table(raw, "device", "[device]")
    _only(
        device,
        {"id", "hub_hostname", "gateway_host", "ca_file", "state_dir"},
        "[device]",
    )
    device_id = _identifier(device, "id", "[device]")
    hostname = _string(device, "hub_hostname", "[device]")
    gateway = _optional_string(device, "gateway_host", "[device]")
    ca_file = _optional_string(device, "ca_file", "[device]")
    state_dir = _optional_string(device, "state_dir", "[device]")

    modules_raw = _table(raw, "modules", "[modules]")
    if not modules_raw:
        raise ConfigError("[modules] is empty; add at least one [modules.<name>] table")
    modules = {
        name: _module(name, table, base_dir)
        for name, table in modules_raw.items()
        if _is_table(table, f"[modules.{name}]")
    }
    return AgentConfig(
        device_id=device_id,
        hub_hostname=hostname,
        gateway_host=gateway,
        ca_pem=_read_ca(base_dir, ca_file) if ca_file else None,
        state_dir=_state_dir(base_dir, state_dir),
        modules=modules,
        link=_numbers(LinkConfig, raw.get("link", {}), "[link]"),
        outbox=_numbers(OutboxConfig, raw.get("outbox", {}), "[outbox]"),
    )


def _module(name: str, table: Mapping[str, Any], base_dir: Path) -> ModuleConfig:
    where = f"[modules.{name}]"
    _only(table, {"kind", "driver", "sensor", "properties", "key"}, where)
    if not _ID_RE.match(name):
        raise ConfigError(
            f"{where} module name {name!r} is not allowed; "
            "use letters, digits and '-' (at most 128)"
        )
    kind = table.get("kind", name)
    if kind not in KINDS:
        raise ConfigError(
            f"{where} kind {kind!r} is not known; set kind to one of {', '.join(KINDS)}"
        )
    sensor = table.get("sensor", {})
    properties = table.get("properties", {})
    _is_table(sensor, f"{where}.sensor")
    _is_table(properties, f"{where}.properties")
    sensor = dict(sensor)
    if isinstance(sensor.get("path"), str):
        # Files named in the config are found next to it, wherever the
        # agent was started from.
        sensor["path"] = str(base_dir / sensor["path"])
    return ModuleConfig(
        module_id=name,
        kind=kind,
        driver=_string(table, "driver", where),
        sensor=sensor,
        properties=check_local(kind, properties, where=f"[modules.{name}.properties]"),
        key=_key(table, where),
    )


def _numbers(cls: type[_T], raw: object, where: str) -> _T:
    """Build a settings dataclass whose fields are all positive numbers."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    defaults = cls()
    _only(raw, set(defaults.__dataclass_fields__), where)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(
                f"{where} {name} = {value!r} is not allowed; use a positive number"
            )
        values[name] = type(getattr(defaults, name))(value)
    return cls(**values)


def _key(table: Mapping[str, Any], where: str) -> str:
    key = _string(table, "key", where)
    try:
        base64.b64decode(key, validate=True)
    except binascii.Error:
        raise ConfigError(
            f"{where} key is not base64; paste the module identity's primary key "
            "(the SharedAccessKey= part of its connection string)"
        ) from None
    return key


def _holds_secrets(raw: Mapping[str, Any]) -> bool:
    modules = raw.get("modules", {})
    if not isinstance(modules, dict):
        return False
    return any(
        isinstance(m, dict) and any(k in m for k in _SECRET_KEYS)
        for m in modules.values()
    )


def _check_private(path: Path, mode: int) -> None:
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise ConfigError(
            f"config file {path} holds module keys and is readable by others "
            f"(mode {stat.S_IMODE(mode):04o}); run: chmod 640 {path}"
        )
    if mode & stat.S_IWGRP:
        raise ConfigError(
            f"config file {path} holds module keys and its group may change them "
            f"(mode {stat.S_IMODE(mode):04o}); run: chmod 640 {path}"
        )


def _read_ca(base_dir: Path, name: str) -> str:
    path = base_dir / name
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"[device] ca_file {str(path)!r} cannot be read ({err}); "
            "point it at the hub's CA certificate in PEM form"
        ) from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(
            f"[device] ca_file {str(path)!r} holds no PEM certificate; "
            "point it at the hub's CA certificate in PEM form"
        )
    return text


def _state_dir(base_dir: Path, configured: str | None) -> Path:
    if configured:
        return base_dir / configured
    # systemd's StateDirectory= hands the path over in this variable.
    from_systemd = os.environ.get("STATE_DIRECTORY")
    if from_systemd:
        return Path(from_systemd.split(":")[0])
    return base_dir / "state"


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{where} has unknown key {unknown[0]!r}; allowed keys are "
            f"{', '.join(sorted(allowed))}"
        )


def _table(raw: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        raise ConfigError(f"{where} section is missing; add it to the config file")
    _is_table(value, where)
    assert isinstance(value, dict)
    return value


def _is_table(value: object, where: str) -> bool:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table, got {value!r}")
    return True


def _string(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f'{where} {key} is missing or empty; set {key} = "..."')
    return value


def _optional_string(table: Mapping[str, Any], key: str, where: str) -> str | None:
    if key not in table:
        return None
    return _string(table, key, where)


def _identifier(table: Mapping[str, Any], key: str, where: str) -> str:
    value = _string(table, key, where)
    if not _ID_RE.match(value):
        raise ConfigError(
            f"{where} {key} = {value!r} is not allowed; "
            "use letters, digits and '-' (at most 128)"
        )
    return value
