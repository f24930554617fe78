"""The device side of the hub: SAS admission and IoT Hub's MQTT topics.

Implements the broker's ``Endpoint``: who may connect (SAS token checked
against the registry), which topics an identity may use, and what twin,
telemetry and method-response publishes do.
"""

import asyncio
import json
import logging
from collections import OrderedDict
from urllib.parse import parse_qsl, unquote

from devhub import auth, twins
from devhub import mqtt_codec as mqtt
from devhub.broker import (
    CONNACK_NOT_AUTHORIZED,
    AccessDenied,
    Admission,
    Refused,
    Throttled,
)
from devhub.core import HubCore
from devhub.errors import DevHubError
from devhub.errors import Throttled as TwinThrottled
from devhub.store import Identity
from devhub.topics import (
    Principal,
    Route,
    allowed_filters,
    method_response_status,
    parse_property_bag,
    parse_query,
    route_publish,
    telemetry_bag,
    twin_response_topic,
)

_LOGGER = logging.getLogger(__name__)

# Twin requests remembered per client, to answer a re-sent duplicate (DUP=1
# after a reconnect) without applying a reported patch twice.
RECENT_REQUESTS = 32


class DeviceApi:
    """IoT Hub's device-facing MQTT behaviour on top of a ``HubCore``.

    Args:
        core: The hub's registry, twins and telemetry.
    """

    def __init__(self, core: HubCore) -> None:
        self._core = core
        self._recent: dict[str, OrderedDict[str, tuple[str, bytes]]] = {}

    def admit(self, connect: mqtt.Connect) -> Admission:
        """Authenticate a CONNECT by its SAS token.

        Raises:
            Refused: CONNACK 5 with the reason (never the token itself).
        """
        principal = _principal(connect.client_id)
        self._check_username(connect.username, principal)
        token = _parse_password(connect.password)
        self._check_resource(token, principal)
        entry = self._core.store.get_identity(principal.device_id, principal.module_id)
        if entry is None:
            raise _refuse(f"identity {principal.client_id!r} is not registered")
        if entry.status != "enabled":
            raise _refuse(f"identity {principal.client_id!r} is {entry.status}")
        if token.expiry <= self._core.clock():
            raise _refuse(f"token expired at se={token.expiry}")
        if not auth.signature_matches(token, self._keys(token, entry.identity)):
            raise _refuse("signature does not match the identity's keys")
        will = connect.will
        if (
            will is not None
            and route_publish(principal, will.topic) is not Route.TELEMETRY
        ):
            raise _refuse(f"will topic {will.topic!r} is not its telemetry topic")
        return Admission(principal, float(token.expiry))

    def may_subscribe(self, principal: Principal, topic_filter: str) -> bool:
        """Return True if the filter is one of the identity's own topics."""
        return topic_filter in allowed_filters(principal)

    async def on_publish(
        self, principal: Principal, publish: mqtt.Publish, *, is_will: bool
    ) -> None:
        """Route a PUBLISH to telemetry, twin or method handling.

        Raises:
            AccessDenied: The topic is not one the identity may publish to.
        """
        route = route_publish(principal, publish.topic)
        if route is None:
            raise AccessDenied(
                f"{principal.client_id} may not publish to {publish.topic!r}"
            )
        if route is Route.TELEMETRY:
            self._telemetry(principal, publish, is_will=is_will)
        elif route is Route.METHOD_RESPONSE:
            self._method_response(principal, publish)
        else:
            self._twin_request(principal, route, publish)

    def _check_username(self, username: str | None, principal: Principal) -> None:
        # Username: {HostName}/{device}[/{module}]/?api-version=..&.. (§2.1).
        # The query (api-version, DeviceClientType, model-id) is informative.
        path, _, query = (username or "").partition("/?")
        expected = f"{self._core.hostname}/{principal.client_id}"
        if path.rstrip("/") != expected:
            raise _refuse(f"username {path!r} does not name {expected!r}")
        api_version = dict(parse_qsl(query)).get("api-version")
        _LOGGER.debug(
            "connect client_id=%s api_version=%s", principal.client_id, api_version
        )

    def _check_resource(self, token: auth.SasToken, principal: Principal) -> None:
        uri = f"{self._core.hostname}/devices/{principal.device_id}"
        if principal.module_id is not None:
            uri += f"/modules/{principal.module_id}"
        # Identity tokens name exactly the identity; policy tokens (skn) may be
        # scoped to any prefix of it (SAS guide, "security tokens").
        if token.key_name is None:
            matches = token.resource_uri.lower() == uri.lower()
        else:
            matches = auth.scope_covers(token.resource_uri, uri)
        if not matches:
            raise _refuse(f"token sr={token.resource_uri!r} is not for {uri!r}")

    def _keys(self, token: auth.SasToken, identity: Identity) -> tuple[str, ...]:
        if token.key_name is None:
            return (identity.primary_key, identity.secondary_key)
        policy_key = self._core.policy_keys.get(token.key_name)
        return () if policy_key is None else (policy_key,)

    def _telemetry(
        self, principal: Principal, publish: mqtt.Publish, *, is_will: bool
    ) -> None:
        if not is_will and self._core.faults.roll("telemetry_throttle_share"):
            raise Throttled(f"telemetry of {principal.client_id} (fault knob)")
        properties = parse_property_bag(telemetry_bag(principal, publish.topic))
        if is_will:
            # IoT Hub tags a will message so routes can tell it apart.
            properties["iothub-MessageType"] = "Will"
        self._core.store_telemetry(principal, properties, publish.payload)
        _LOGGER.debug(
            "telemetry stored client_id=%s bytes=%s",
            principal.client_id,
            len(publish.payload),
        )

    def _method_response(self, principal: Principal, publish: mqtt.Publish) -> None:
        status = method_response_status(publish.topic)
        rid = unquote(parse_query(publish.topic).get("$rid", ""))
        if status is None or not rid:
            _LOGGER.warning(
                "method response malformed client_id=%s topic=%s",
                principal.client_id,
                publish.topic,
            )
            return
        try:
            payload = json.loads(publish.payload) if publish.payload else None
        except ValueError:
            payload = publish.payload.decode("utf-8", errors="replace")
        self._core.complete_method(principal, rid, status, payload)

    def _twin_request(
        self, principal: Principal, route: Route, publish: mqtt.Publish
    ) -> None:
        rid = parse_query(publish.topic).get("$rid")
        if not rid:
            _LOGGER.warning(
                "twin request without $rid ignored client_id=%s topic=%s",
                principal.client_id,
                publish.topic,
            )
            return
        recent = self._recent.setdefault(principal.client_id, OrderedDict())
        if publish.dup and rid in recent:
            topic, body = recent[rid]
        else:
            topic, body = self._answer(principal, route, rid, publish.payload)
            recent[rid] = (topic, body)
            while len(recent) > RECENT_REQUESTS:
                recent.popitem(last=False)
        self._core_deliver(principal, topic, body)

    def _answer(
        self, principal: Principal, route: Route, rid: str, payload: bytes
    ) -> tuple[str, bytes]:
        try:
            if self._core.faults.roll("twin_throttle_share"):
                raise TwinThrottled(
                    "twin request throttled (fault knob); back off and retry"
                )
            if route is Route.TWIN_GET:
                # The SDK sends a single space as the body; it is ignored.
                twin = self._core.get_twin(principal.device_id, principal.module_id)
                body = json.dumps(twins.device_document(twin)).encode()
                return twin_response_topic(200, rid), body
            patch = twins.parse_json_object(payload, what="reported patch")
            version = self._core.patch_reported(principal, patch)
        except DevHubError as err:
            _LOGGER.warning(
                "twin request refused client_id=%s status=%s reason=%s",
                principal.client_id,
                err.http_status,
                err,
            )
            error = {"errorCode": err.numeric_code, "message": str(err)}
            return twin_response_topic(err.http_status, rid), json.dumps(error).encode()
        _LOGGER.info(
            "reported patch applied client_id=%s reported_version=%s",
            principal.client_id,
            version,
        )
        return twin_response_topic(204, rid, version), b""

    def _core_deliver(self, principal: Principal, topic: str, body: bytes) -> None:
        faults = self._core.faults
        if faults.take("drop_twin_responses"):
            _LOGGER.warning(
                "twin response dropped by fault knob client_id=%s topic=%s",
                principal.client_id,
                topic,
            )
        elif faults.twin_response_delay_s > 0:
            asyncio.get_running_loop().call_later(
                faults.twin_response_delay_s, self._send, principal, topic, body
            )
        else:
            self._send(principal, topic, body)

    def _send(self, principal: Principal, topic: str, body: bytes) -> None:
        if not self._core.deliver(principal.client_id, topic, body):
            # Edge Hub's API notes: without $iothub/twin/res/# no answer is sent.
            _LOGGER.info(
                "twin response not sent, not subscribed client_id=%s topic=%s",
                principal.client_id,
                topic,
            )


def _principal(client_id: str) -> Principal:
    device_id, _, module_id = client_id.partition("/")
    if not device_id or "/" in module_id:
        raise _refuse(f"client id {client_id!r} is not 'device' or 'device/module'")
    return Principal(device_id, module_id or None)


def _parse_password(password: bytes | None) -> auth.SasToken:
    if password is None:
        raise _refuse("no password; send a SAS token (X.509 is not supported)")
    try:
        return auth.parse_sas_token(password.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise _refuse(f"password is not a SAS token ({err})") from None


def _refuse(reason: str) -> Refused:
    return Refused(CONNACK_NOT_AUTHORIZED, reason)
