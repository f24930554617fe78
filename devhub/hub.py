"""``DevHub``: one local IoT-Hub-compatible endpoint, MQTT and HTTPS.

Typical use in a test::

    async with DevHub(tmp_path, host="127.0.0.2") as hub:
        hub.add_device("pi")
        hub.add_module("pi", "light")
        cs = hub.module_connection_string("pi", "light")
"""

import asyncio
import datetime
import errno
import ipaddress
import json
import logging
import os
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from aiohttp import web

from devhub import views
from devhub.auth import new_key
from devhub.broker import Broker
from devhub.certs import CertPaths, ensure_certificates
from devhub.client import SERVICE_FILE, default_state_dir
from devhub.core import DEFAULT_METHOD_TIMEOUT_S, HubCore
from devhub.device_api import DeviceApi
from devhub.errors import DevHubError
from devhub.faults import Faults
from devhub.service import create_app
from devhub.store import Identity, Store
from devhub.topics import Principal
from devhub.twins import JsonObject

_LOGGER = logging.getLogger(__name__)

__all__ = ["DevHub", "Identity", "default_state_dir"]

POLICY_NAME = "iothubowner"
DEFAULT_HOSTNAME = "devhub.local"
DEFAULT_TELEMETRY_KEEP = 10_000
STATE_DIR_MODE = 0o700
SECRET_FILE_MODE = 0o600
DATABASE_FILE = "devhub.sqlite3"


class DevHub:
    """A dev hub bound to a loopback address, with state in ``state_dir``.

    Args:
        state_dir: Where the database, certificates and service.json live.
        host: Loopback address to bind; parallel hubs use 127.0.0.2, ...
        mqtt_port: MQTT over TLS port (the device SDK always dials 8883).
        service_port: HTTPS service API port.
        hostname: The hub's HostName, as in connection strings and tokens.
        clock: Seconds since the epoch; tests inject a shifted clock.
        telemetry_keep: How many telemetry messages to keep, newest first.

    Raises:
        DevHubError: ``host`` is not a loopback IP address.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        mqtt_port: int = 8883,
        service_port: int = 8443,
        hostname: str = DEFAULT_HOSTNAME,
        clock: Callable[[], float] = time.time,
        telemetry_keep: int = DEFAULT_TELEMETRY_KEEP,
    ) -> None:
        _check_loopback(host)
        self.state_dir = Path(state_dir).resolve()
        self.host = host
        self.hostname = hostname
        self.mqtt_port = mqtt_port
        self.service_port = service_port
        self._clock = clock
        self._telemetry_keep = telemetry_keep
        self._certs = CertPaths.in_dir(self.state_dir)
        self._core: HubCore | None = None
        self._offline_store: Store | None = None
        self._broker: Broker | None = None
        self._runner: web.AppRunner | None = None
        self._policy_key = ""
        self.faults = Faults()
        """Fault knobs for tests (off by default); kept across restarts."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def ca_path(self) -> Path:
        """Return the path of the CA certificate (PEM)."""
        return self._certs.ca_cert

    @property
    def ca_pem(self) -> str:
        """Return the CA certificate as PEM text (``server_verification_cert``)."""
        return self.ca_path.read_text()

    @property
    def service_url(self) -> str:
        """Return the base URL of the service API."""
        return f"https://{_url_host(self.host)}:{self.service_port}"

    @property
    def service_connection_string(self) -> str:
        """Return the ``iothubowner`` service connection string."""
        return (
            f"HostName={self.hostname};SharedAccessKeyName={POLICY_NAME};"
            f"SharedAccessKey={self._policy_key}"
        )

    async def start(self) -> None:
        """Create or load the state, then serve MQTT and HTTPS.

        Raises:
            DevHubError: A port is taken; the message says how to fix it.
        """
        self._close_offline_store()
        _make_private_dir(self.state_dir)
        store = Store(self.state_dir / DATABASE_FILE)
        try:
            self._policy_key = _policy_key(store)
            context = await asyncio.to_thread(self._tls_context)
            self._broker = Broker(store, clock=self._clock, faults=self.faults)
            self._core = HubCore(
                store,
                self._broker,
                hostname=self.hostname,
                clock=self._clock,
                telemetry_keep=self._telemetry_keep,
                policy_keys={POLICY_NAME: self._policy_key},
                faults=self.faults,
            )
            await self._listen(context)
        except BaseException:
            await self.stop()
            store.close()
            raise
        await asyncio.to_thread(self._write_service_file)
        _LOGGER.info(
            "dev hub started hostname=%s host=%s mqtt_port=%s service_port=%s",
            self.hostname,
            self.host,
            self.mqtt_port,
            self.service_port,
        )

    async def stop(self) -> None:
        """Close every connection and stop serving; state stays on disk."""
        self._close_offline_store()
        self._certs.ca_cert.parent.joinpath(SERVICE_FILE).unlink(missing_ok=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._broker is not None:
            await self._broker.stop()
            self._broker = None
        if self._core is not None:
            self._core.store.close()
            self._core = None
            _LOGGER.info("dev hub stopped host=%s", self.host)

    def get_identity(self, device_id: str, module_id: str | None = None) -> Identity:
        """Return a device (``module_id`` None) or module identity.

        Raises:
            IdentityNotFound: No such device or module.
        """
        return self.core.get_identity(device_id, module_id).identity

    def ensure_module(self, device_id: str, module_id: str) -> Identity:
        """Return a module identity, registering it and its device if missing."""
        for module in (None, module_id):
            if self.core.store.get_identity(device_id, module) is None:
                self.core.add_identity(device_id, module)
        return self.get_identity(device_id, module_id)

    def add_device(self, device_id: str) -> Identity:
        """Register a device with fresh keys.

        Raises:
            IdentityExists: The device exists.
            BadRequest: The id breaks the registry's naming rules.
        """
        return self.core.add_identity(device_id).identity

    def add_module(self, device_id: str, module_id: str) -> Identity:
        """Register a module of an existing device, with fresh keys.

        Raises:
            IdentityNotFound: The device does not exist.
            IdentityExists: The module exists.
        """
        return self.core.add_identity(device_id, module_id).identity

    def module_connection_string(self, device_id: str, module_id: str) -> str:
        """Return the module's connection string, dialling this hub's host."""
        identity = self.core.get_identity(device_id, module_id).identity
        return (
            f"HostName={self.hostname};DeviceId={device_id};ModuleId={module_id};"
            f"SharedAccessKey={identity.primary_key};GatewayHostName={self.host}"
        )

    def device_connection_string(self, device_id: str) -> str:
        """Return the device's connection string, dialling this hub's host."""
        identity = self.core.get_identity(device_id, None).identity
        return (
            f"HostName={self.hostname};DeviceId={device_id};"
            f"SharedAccessKey={identity.primary_key};GatewayHostName={self.host}"
        )

    def get_module_twin(self, device_id: str, module_id: str) -> JsonObject:
        """Return the module twin in IoT Hub's service shape."""
        twin = self.core.get_twin(device_id, module_id)
        entry = self.core.get_identity(device_id, module_id)
        connected = self.core.is_connected(device_id, module_id)
        return views.twin_view(entry, twin, connected=connected)

    def update_module_twin(
        self, device_id: str, module_id: str, patch: JsonObject
    ) -> JsonObject:
        """Apply a service PATCH; notify the module if connected and subscribed.

        Args:
            device_id: The device.
            module_id: The module.
            patch: ``{"properties": {"desired": {...}}, "tags": {...}}``.

        Returns:
            The updated twin in the service shape.
        """
        self.core.update_twin(device_id, module_id, patch)
        return self.get_module_twin(device_id, module_id)

    def replace_module_twin(
        self, device_id: str, module_id: str, twin: JsonObject
    ) -> JsonObject:
        """Apply a service PUT (tags and/or desired replaced whole).

        The module, if connected and subscribed, is notified of the new
        desired document plus null for each removed key.

        Returns:
            The updated twin in the service shape.
        """
        self.core.replace_twin(device_id, module_id, twin)
        return self.get_module_twin(device_id, module_id)

    def delete_identity(self, device_id: str, module_id: str | None = None) -> None:
        """Delete a device (with its modules) or a module, and its twin.

        Its sessions are forgotten and its open connections closed.

        Raises:
            IdentityNotFound: No such device or module.
        """
        self.core.delete_identity(device_id, module_id)

    def telemetry(
        self, device_id: str, module_id: str, *, limit: int = 100
    ) -> list[JsonObject]:
        """Return the module's newest ``limit`` messages, oldest first."""
        records = self.core.telemetry(device_id, module_id, limit=limit)
        return [views.telemetry_view(record) for record in records]

    async def invoke_method(
        self,
        device_id: str,
        module_id: str,
        name: str,
        payload: object = None,
        *,
        timeout_s: float = DEFAULT_METHOD_TIMEOUT_S,
    ) -> JsonObject:
        """Call a direct method; return ``{"status", "payload"}``."""
        status, answer = await self.core.invoke_method(
            device_id, module_id, name, payload, timeout_s=timeout_s
        )
        return {"status": status, "payload": answer}

    def drop_connections(
        self, device_id: str | None = None, module_id: str | None = None
    ) -> int:
        """Abort matching connections without DISCONNECT; return how many."""

        def selected(principal: Principal) -> bool:
            if device_id is not None and principal.device_id != device_id:
                return False
            return module_id is None or principal.module_id == module_id

        return 0 if self._broker is None else self._broker.drop(selected)

    def connected_clients(self) -> set[str]:
        """Return the client ids currently connected."""
        return set() if self._broker is None else self._broker.connected_clients()

    @property
    def core(self) -> HubCore:
        """Return the hub's core; offline, one that edits the state on disk.

        Offline (before ``start()`` or after ``stop()``) registry and twin
        changes are stored but notify nobody, like changes made while a
        module is disconnected.
        """
        if self._core is not None:
            return self._core
        if self._offline_store is None:
            _make_private_dir(self.state_dir)
            self._offline_store = Store(self.state_dir / DATABASE_FILE)
        return HubCore(
            self._offline_store,
            _Offline(),
            hostname=self.hostname,
            clock=self._clock,
            telemetry_keep=self._telemetry_keep,
            policy_keys={POLICY_NAME: _policy_key(self._offline_store)},
        )

    def close(self) -> None:
        """Release the state opened by offline use (``stop()`` does too)."""
        self._close_offline_store()

    def _close_offline_store(self) -> None:
        if self._offline_store is not None:
            self._offline_store.close()
            self._offline_store = None

    def _tls_context(self) -> ssl.SSLContext:
        now = datetime.datetime.fromtimestamp(self._clock(), datetime.UTC)
        ips = sorted({self.host, "127.0.0.1"})
        names = ["localhost", self.hostname]
        ensure_certificates(self._certs, dns_names=names, ip_addresses=ips, now=now)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # The device SDK offers TLS 1.2 only (reference §2.2); allow 1.2 and up.
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._certs.server_cert, self._certs.server_key)
        return context

    async def _listen(self, context: ssl.SSLContext) -> None:
        assert self._broker is not None
        assert self._core is not None
        try:
            await self._broker.start(
                DeviceApi(self._core), self.host, self.mqtt_port, context
            )
            self._runner = web.AppRunner(create_app(self._core), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(
                self._runner, self.host, self.service_port, ssl_context=context
            )
            await site.start()
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            raise DevHubError(
                f"{self.host}: port {self.mqtt_port} or {self.service_port} is in "
                "use (another dev hub?); stop it or pick another --host"
            ) from err

    def _write_service_file(self) -> None:
        info = {
            "url": self.service_url,
            "connection_string": self.service_connection_string,
            "ca_path": str(self.ca_path),
            "mqtt_host": self.host,
            "mqtt_port": self.mqtt_port,
            "hostname": self.hostname,
        }
        _write_private(self.state_dir / SERVICE_FILE, json.dumps(info, indent=2))


class _Offline:
    """Delivery for a hub that is not serving: nobody is connected."""

    def deliver(self, client_id: str, topic: str, payload: bytes) -> bool:
        return False

    def connected_clients(self) -> set[str]:
        return set()

    def disconnect(self, client_id: str) -> bool:
        return False


def _check_loopback(host: str) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise DevHubError(
            f"dev hub host {host!r} is not a loopback IP address; "
            "use 127.0.0.1 (or 127.0.0.2, ... for parallel hubs)"
        )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _policy_key(store: Store) -> str:
    key = store.get_meta(f"policy_key:{POLICY_NAME}")
    if key is None:
        key = new_key()
        store.set_meta(f"policy_key:{POLICY_NAME}", key)
    return key


def _make_private_dir(path: Path) -> None:
    path.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
    path.chmod(STATE_DIR_MODE)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_FILE_MODE)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    path.chmod(SECRET_FILE_MODE)
