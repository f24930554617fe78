"""What the hub does, independent of MQTT or HTTP: registry, twins, messages.

Both the device side (``device_api``) and the service side (``service``)
call into ``HubCore``; it alone touches the store.
"""

import asyncio
import base64
import binascii
import datetime
import itertools
import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from devhub import twins
from devhub.auth import new_key
from devhub.errors import (
    BadRequest,
    DeviceNotOnline,
    IdentityNotFound,
    MessageTooLarge,
    MethodTimeout,
    PreconditionFailed,
    TooManyModules,
)
from devhub.faults import Faults
from devhub.store import Identity, RegistryEntry, Store, TelemetryRecord
from devhub.topics import (
    SYSTEM_PROPERTIES,
    Principal,
    desired_patch_topic,
    method_request_topic,
)
from devhub.twins import JsonObject, ModuleTwin

_LOGGER = logging.getLogger(__name__)

# Identity registry rules: ≤ 128 ASCII characters from this set (reference §1.4).
_ID_RE = re.compile(r"[A-Za-z0-9\-:.+%_#*?!(),=@;$']{1,128}")
# Method names: printable ASCII without separators (direct methods guide).
_METHOD_NAME_RE = re.compile(r"[!#%&'*+\-.0-9A-Z^_`a-z|~]{1,128}")
METHOD_TIMEOUT_S = (5, 300)
DEFAULT_METHOD_TIMEOUT_S = 30
# connectTimeoutInSeconds: how long a call waits for the module to come
# online and subscribe; default 0 = it must be listening already (§6).
METHOD_CONNECT_TIMEOUT_S = (0, 300)
METHOD_PAYLOAD_MAX_BYTES = 128 * 1024
METHOD_CONNECT_POLL_S = 0.1
# Modules per device (module twins guide, 50-module revision; reference §0).
MAX_MODULES_PER_DEVICE = 50
NEVER = "0001-01-01T00:00:00Z"


class Delivery(Protocol):
    """How the core reaches connected clients (the broker)."""

    def deliver(self, client_id: str, topic: str, payload: bytes) -> bool:
        """Send if connected and subscribed; return True if sent."""

    def connected_clients(self) -> set[str]:
        """Return the client ids with a live connection."""

    def disconnect(self, client_id: str) -> bool:
        """Close the client's connection; return True if it had one."""


class HubCore:
    """Registry, twins, telemetry and direct methods of one hub.

    Args:
        store: The hub's state.
        delivery: Sends messages to connected clients.
        hostname: The hub's HostName.
        clock: Seconds since the epoch (injectable for tests).
        telemetry_keep: How many messages the hub keeps (newest first).
        policy_keys: Shared access policy names and their keys.
        faults: Test knobs; all off unless a test turns them on.
    """

    def __init__(
        self,
        store: Store,
        delivery: Delivery,
        *,
        hostname: str,
        clock: Callable[[], float],
        telemetry_keep: int,
        policy_keys: dict[str, str],
        faults: Faults | None = None,
    ) -> None:
        self.store = store
        self.faults = faults or Faults()
        self.policy_keys = policy_keys
        self.hostname = hostname
        self.clock = clock
        self._delivery = delivery
        self._telemetry_keep = telemetry_keep
        self._rids = itertools.count(1)
        self._pending: dict[tuple[str, str], asyncio.Future[tuple[int, object]]] = {}

    def now_iso(self) -> str:
        """Return the clock's time as ISO 8601 UTC with milliseconds."""
        moment = datetime.datetime.fromtimestamp(self.clock(), datetime.UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def add_identity(
        self,
        device_id: str,
        module_id: str | None = None,
        *,
        primary_key: str | None = None,
        secondary_key: str | None = None,
    ) -> RegistryEntry:
        """Register a device or module with fresh keys unless keys are given.

        Raises:
            BadRequest: An id breaks the registry's naming rules.
            IdentityNotFound: A module's device does not exist.
            IdentityExists: The identity already exists.
        """
        for kind, value in (("device", device_id), ("module", module_id)):
            if value is not None and not _ID_RE.fullmatch(value):
                raise BadRequest(
                    f"{kind} id {value!r} is invalid; use up to 128 letters, "
                    "digits and - : . + % _ # * ? ! ( ) , = @ ; $ '"
                )
        if module_id is not None:
            self._check_module_room(device_id, module_id)
        keys = (primary_key or new_key(), secondary_key or new_key())
        identity = Identity(device_id, module_id, *keys)
        now = self.now_iso()
        generation_id = str(secrets.randbelow(10**18))
        entry = RegistryEntry(identity, "enabled", generation_id, now)
        self.store.add_identity(entry, twins.new_twin(now))
        _LOGGER.info("identity added device=%s module=%s", device_id, module_id)
        return entry

    def update_identity(
        self,
        device_id: str,
        module_id: str | None,
        *,
        primary_key: str | None,
        secondary_key: str | None,
        if_match: str,
    ) -> RegistryEntry:
        """Replace an identity's keys (PUT with If-Match on an existing one).

        A key left None keeps its current value. New keys close the
        identity's connection, whose token they no longer sign.

        Raises:
            IdentityNotFound: No such device or module.
            PreconditionFailed: ``if_match`` is not ``*`` or the current etag.
        """
        entry = self.get_identity(device_id, module_id)
        check_etag(if_match, registry_etag(entry), what="identity")
        old = entry.identity
        identity = replace(
            old,
            primary_key=primary_key or old.primary_key,
            secondary_key=secondary_key or old.secondary_key,
        )
        updated = replace(entry, identity=identity)
        self.store.update_identity(updated)
        if identity != old:
            self._delivery.disconnect(Principal(device_id, module_id).client_id)
        _LOGGER.info("identity updated device=%s module=%s", device_id, module_id)
        return updated

    def deliver(self, client_id: str, topic: str, body: bytes) -> bool:
        """Send to a connected, subscribed client; return True if sent."""
        return self._delivery.deliver(client_id, topic, body)

    def get_identity(self, device_id: str, module_id: str | None) -> RegistryEntry:
        """Return a registry entry.

        Raises:
            IdentityNotFound: No such device or module.
        """
        entry = self.store.get_identity(device_id, module_id)
        if entry is None:
            raise _not_found(device_id, module_id)
        return entry

    def delete_identity(
        self, device_id: str, module_id: str | None, *, if_match: str | None = None
    ) -> None:
        """Delete an identity, its twin and sessions; close its connections.

        A device takes its modules along.

        Raises:
            IdentityNotFound: No such device or module.
            PreconditionFailed: ``if_match`` is not ``*`` or the current etag.
        """
        entry = self.get_identity(device_id, module_id)
        check_etag(if_match, registry_etag(entry), what="identity")
        principals = [Principal(device_id, module_id)]
        if module_id is None:
            modules = self.store.list_identities(device_id)
            principals += [Principal(device_id, e.identity.module_id) for e in modules]
        self.store.delete_identity(device_id, module_id)
        for principal in principals:
            self.store.open_session(principal.client_id, clean=True)
            self._delivery.disconnect(principal.client_id)
        _LOGGER.info("identity deleted device=%s module=%s", device_id, module_id)

    def is_connected(self, device_id: str, module_id: str | None) -> bool:
        """Return True if the identity has a live MQTT connection."""
        client_id = Principal(device_id, module_id).client_id
        return client_id in self._delivery.connected_clients()

    def get_twin(self, device_id: str, module_id: str | None) -> ModuleTwin:
        """Return a twin.

        Raises:
            IdentityNotFound: No such device or module.
        """
        twin = self.store.load_twin(device_id, module_id)
        if twin is None:
            raise _not_found(device_id, module_id)
        return twin

    def update_twin(
        self,
        device_id: str,
        module_id: str | None,
        body: JsonObject,
        *,
        if_match: str | None = None,
    ) -> ModuleTwin:
        """Apply a service PATCH and notify the module of desired changes.

        Raises:
            IdentityNotFound: No such device or module.
            PreconditionFailed: ``if_match`` is not ``*`` or the current etag.
            BadRequest: The patch is malformed or breaks a twin rule.
        """
        twin = self.get_twin(device_id, module_id)
        check_etag(if_match, twin.etag, what="twin")
        new, desired_patch = twins.apply_service_patch(twin, body, self.now_iso())
        self._save_and_notify(device_id, module_id, new, desired_patch)
        return new

    def replace_twin(
        self,
        device_id: str,
        module_id: str | None,
        body: JsonObject,
        *,
        if_match: str | None = None,
    ) -> ModuleTwin:
        """Apply a service PUT: replace tags and/or desired properties.

        The module is notified of the new desired document plus null for
        each removed key (reference §5.3).

        Raises:
            IdentityNotFound: No such device or module.
            PreconditionFailed: ``if_match`` is not ``*`` or the current etag.
            BadRequest: The body is malformed or breaks a twin rule.
        """
        twin = self.get_twin(device_id, module_id)
        check_etag(if_match, twin.etag, what="twin")
        new, desired_patch = twins.apply_service_replace(twin, body, self.now_iso())
        self._save_and_notify(device_id, module_id, new, desired_patch)
        return new

    def patch_reported(self, principal: Principal, patch: JsonObject) -> int:
        """Merge a module's reported patch; return the new reported version.

        Raises:
            IdentityNotFound: The identity was deleted while connected.
            BadRequest: The patch breaks a twin rule.
        """
        twin = self.get_twin(principal.device_id, principal.module_id)
        new = twins.apply_reported_patch(twin, patch, self.now_iso())
        self.store.save_twin(principal.device_id, principal.module_id, new)
        return new.reported.version

    def store_telemetry(
        self, principal: Principal, properties: dict[str, str | None], body: bytes
    ) -> None:
        """Store one device-to-cloud message with its property bag."""
        system = {
            SYSTEM_PROPERTIES[k]: v
            for k, v in properties.items()
            if k in SYSTEM_PROPERTIES
        }
        custom = {k: v for k, v in properties.items() if k not in SYSTEM_PROPERTIES}
        record = TelemetryRecord(
            principal.device_id,
            principal.module_id,
            self.now_iso(),
            body,
            system,
            custom,
        )
        self.store.add_telemetry(record, keep=self._telemetry_keep)

    def telemetry(
        self, device_id: str, module_id: str | None, *, limit: int, after: int = 0
    ) -> list[TelemetryRecord]:
        """Return an identity's newest ``limit`` messages, oldest first.

        Only messages with a sequence number above ``after`` count.
        """
        self.get_identity(device_id, module_id)
        return self.store.telemetry(device_id, module_id, limit=limit, after=after)

    async def invoke_method(
        self,
        device_id: str,
        module_id: str | None,
        name: str,
        payload: object,
        *,
        timeout_s: float = DEFAULT_METHOD_TIMEOUT_S,
        connect_timeout_s: float = 0,
    ) -> tuple[int, object]:
        """Call a direct method and return the module's status and payload.

        Args:
            device_id: The device.
            module_id: The module (None calls the device).
            name: The method name.
            payload: Any JSON value, at most 128 KB encoded.
            timeout_s: How long to wait for the answer (5 to 300 s).
            connect_timeout_s: How long to wait for the module to be
                connected and subscribed (0 to 300 s; 0 = not at all).

        Raises:
            BadRequest: The method name or a timeout is invalid.
            MessageTooLarge: The request or response payload is over 128 KB.
            IdentityNotFound: No such device or module.
            DeviceNotOnline: The module is offline or not subscribed.
            MethodTimeout: No answer within ``timeout_s``.
        """
        _check_method(name, timeout_s, connect_timeout_s)
        body = _method_payload(payload, what="request")
        self.get_identity(device_id, module_id)
        client_id = Principal(device_id, module_id).client_id
        rid = format(next(self._rids), "x")
        future = asyncio.get_running_loop().create_future()
        self._pending[(client_id, rid)] = future
        try:
            topic = method_request_topic(name, rid)
            await self._deliver_within(client_id, topic, body, connect_timeout_s)
            async with asyncio.timeout(timeout_s):
                status, answer = await future
            _method_payload(answer, what=f"response of {client_id}")
            return status, answer
        except TimeoutError:
            raise MethodTimeout(
                f"{client_id} did not answer method {name!r} in {timeout_s} s; "
                "check its handler or raise responseTimeoutInSeconds"
            ) from None
        finally:
            self._pending.pop((client_id, rid), None)

    def complete_method(
        self, principal: Principal, rid: str, status: int, payload: object
    ) -> None:
        """Hand a module's method response to the waiting caller."""
        future = self._pending.get((principal.client_id, rid))
        if future is None or future.done():
            _LOGGER.info(
                "method response ignored, no call waits client_id=%s rid=%s",
                principal.client_id,
                rid,
            )
            return
        future.set_result((status, payload))

    async def _deliver_within(
        self, client_id: str, topic: str, body: bytes, wait_s: float
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        # Connections and subscriptions have no event to wait on; poll.
        while not self._delivery.deliver(client_id, topic, body):
            if loop.time() >= deadline:
                raise DeviceNotOnline(
                    f"{client_id} is not connected or not listening for methods; "
                    "connect it and set its method handler"
                )
            await asyncio.sleep(METHOD_CONNECT_POLL_S)

    def _check_module_room(self, device_id: str, module_id: str) -> None:
        self.get_identity(device_id, None)
        if self.store.get_identity(device_id, module_id) is not None:
            return  # The store reports the duplicate as 409.
        count = len(self.store.list_identities(device_id))
        if count >= MAX_MODULES_PER_DEVICE:
            raise TooManyModules(
                f"device {device_id!r} already has {count} modules, the most "
                "IoT Hub allows; delete one before adding "
                f"{module_id!r}"
            )

    def _save_and_notify(
        self,
        device_id: str,
        module_id: str | None,
        twin: ModuleTwin,
        desired_patch: JsonObject | None,
    ) -> None:
        self.store.save_twin(device_id, module_id, twin)
        if desired_patch is not None:
            self._notify_desired(Principal(device_id, module_id), twin, desired_patch)

    def _notify_desired(
        self, principal: Principal, twin: ModuleTwin, patch: JsonObject
    ) -> None:
        version = twin.desired.version
        body = json.dumps(twins.notification(patch, version)).encode()
        if self.faults.take("drop_desired_notifications"):
            _LOGGER.warning(
                "desired notification dropped by fault knob client_id=%s "
                "desired_version=%s",
                principal.client_id,
                version,
            )
            return
        topic = desired_patch_topic(version)
        sent = self._delivery.deliver(principal.client_id, topic, body)
        if sent and self.faults.take("repeat_desired_notifications"):
            self._delivery.deliver(principal.client_id, topic, body)
        _LOGGER.info(
            "desired patch applied client_id=%s desired_version=%s notified=%s",
            principal.client_id,
            version,
            sent,
        )


def check_etag(if_match: str | None, etag: str, *, what: str) -> None:
    """Check an ``If-Match`` header: absent and ``*`` (quoted or not) pass.

    Raises:
        PreconditionFailed: The header names another etag.
    """
    if if_match is None or if_match.strip() in ("*", '"*"'):
        return
    if if_match.strip().strip('"') != etag:
        raise PreconditionFailed(
            f"If-Match {if_match} does not match the {what} etag {etag!r}; "
            f'read the {what} again or send If-Match: "*"'
        )


def registry_etag(entry: RegistryEntry) -> str:
    """Return an identity's etag; it changes when keys or status change."""
    ident = entry.identity
    seed = ":".join(
        (entry.generation_id, ident.primary_key, ident.secondary_key, entry.status)
    ).encode()
    return base64.b64encode(binascii.crc32(seed).to_bytes(4, "big")).decode()


def _check_method(name: str, timeout_s: float, connect_timeout_s: float) -> None:
    if not _METHOD_NAME_RE.fullmatch(name):
        raise BadRequest(
            f"method name {name!r} is invalid; use letters, digits and - _ . only"
        )
    for field, value, (low, high) in (
        ("responseTimeoutInSeconds", timeout_s, METHOD_TIMEOUT_S),
        ("connectTimeoutInSeconds", connect_timeout_s, METHOD_CONNECT_TIMEOUT_S),
    ):
        if not low <= value <= high:
            raise BadRequest(
                f"{field} {value:g} is out of range; use {low} to {high} s"
            )


def _method_payload(payload: object, *, what: str) -> bytes:
    body = json.dumps(payload).encode()
    if len(body) > METHOD_PAYLOAD_MAX_BYTES:
        raise MessageTooLarge(
            f"method {what} payload is {len(body)} bytes; IoT Hub allows "
            f"{METHOD_PAYLOAD_MAX_BYTES}, send less or use telemetry"
        )
    return body


def _not_found(device_id: str, module_id: str | None) -> IdentityNotFound:
    if module_id is None:
        return IdentityNotFound(
            f"device {device_id!r} is not registered; add it first",
            error_code="DeviceNotFound",
        )
    return IdentityNotFound(
        f"module {module_id!r} of device {device_id!r} is not registered; add it first",
        error_code="ModuleNotFound",
    )
