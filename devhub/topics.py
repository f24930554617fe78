"""IoT Hub topic names: which an identity may use, and how to read them.

Topic shapes follow "Communicate with an IoT hub using the MQTT protocol"
(Microsoft Learn); a module and a device differ only in the telemetry and
input/C2D prefixes, the ``$iothub/...`` topics are scoped by the connection.
"""

from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote

TWIN_RESPONSES = "$iothub/twin/res/#"
DESIRED_PATCHES = "$iothub/twin/PATCH/properties/desired/#"
METHOD_REQUESTS = "$iothub/methods/POST/#"
TWIN_GET_PREFIX = "$iothub/twin/GET/"
REPORTED_PATCH_PREFIX = "$iothub/twin/PATCH/properties/reported/"
METHOD_RESPONSE_PREFIX = "$iothub/methods/res/"

# System property keys of a telemetry bag, once URL-decoded (reference §3.4).
SYSTEM_PROPERTIES = {
    "$.mid": "message_id",
    "$.cid": "correlation_id",
    "$.uid": "user_id",
    "$.ct": "content_type",
    "$.ce": "content_encoding",
    "$.on": "output_name",
    "$.ifid": "interface_id",
    "$.exp": "expiry_time_utc",
}


class Route(Enum):
    """What a client-to-hub PUBLISH asks for."""

    TELEMETRY = "telemetry"
    TWIN_GET = "twin_get"
    REPORTED_PATCH = "reported_patch"
    METHOD_RESPONSE = "method_response"


@dataclass(frozen=True, slots=True)
class Principal:
    """The identity a connection authenticated as."""

    device_id: str
    module_id: str | None = None

    @property
    def client_id(self) -> str:
        """Return the MQTT client id IoT Hub expects for this identity."""
        if self.module_id is None:
            return self.device_id
        return f"{self.device_id}/{self.module_id}"

    @property
    def topic_prefix(self) -> str:
        """Return ``devices/{d}`` or ``devices/{d}/modules/{m}``."""
        if self.module_id is None:
            return f"devices/{self.device_id}"
        return f"devices/{self.device_id}/modules/{self.module_id}"


def allowed_filters(principal: Principal) -> frozenset[str]:
    """Return the topic filters ``principal`` may subscribe to."""
    if principal.module_id is None:
        own = f"{principal.topic_prefix}/messages/devicebound/#"
    else:
        own = f"{principal.topic_prefix}/inputs/#"
    return frozenset({TWIN_RESPONSES, DESIRED_PATCHES, METHOD_REQUESTS, own})


def route_publish(principal: Principal, topic: str) -> Route | None:
    """Return what a PUBLISH from ``principal`` to ``topic`` asks for.

    Returns:
        The route, or None if the topic is not one this identity may use.
    """
    if topic.startswith(f"{principal.topic_prefix}/messages/events/"):
        return Route.TELEMETRY
    if topic.startswith(TWIN_GET_PREFIX + "?"):
        return Route.TWIN_GET
    if topic.startswith(REPORTED_PATCH_PREFIX + "?"):
        return Route.REPORTED_PATCH
    if topic.startswith(METHOD_RESPONSE_PREFIX) and "/?" in topic:
        return Route.METHOD_RESPONSE
    return None


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Return True if ``topic`` matches the MQTT ``topic_filter`` (§4.7)."""
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def parse_query(topic: str) -> dict[str, str]:
    """Return the ``?a=b&c=d`` part of a ``$iothub`` topic as a dict.

    Values stay as received so that a ``$rid`` is echoed back verbatim.
    """
    _, _, query = topic.partition("?")
    fields: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        name, _, value = item.partition("=")
        fields[name] = value
    return fields


def method_response_status(topic: str) -> int | None:
    """Return the status of a ``$iothub/methods/res/{status}/?..`` topic."""
    status = topic[len(METHOD_RESPONSE_PREFIX) :].partition("/")[0]
    return int(status) if status.lstrip("-").isdigit() else None


def parse_property_bag(bag: str) -> dict[str, str | None]:
    """Decode a telemetry property bag; a key without ``=`` maps to None.

    Keys and values are URL-decoded with ``unquote`` (not ``unquote_plus``),
    as the SDK encodes them with ``quote`` (reference §3.3 and §3.4).
    """
    properties: dict[str, str | None] = {}
    for item in filter(None, bag.split("&")):
        name, sep, value = item.partition("=")
        properties[unquote(name)] = unquote(value) if sep else None
    return properties


def telemetry_bag(principal: Principal, topic: str) -> str:
    """Return the property bag that follows ``.../messages/events/``."""
    return topic[len(f"{principal.topic_prefix}/messages/events/") :]


def twin_response_topic(status: int, rid: str, version: int | None = None) -> str:
    """Return ``$iothub/twin/res/{status}/?$rid=..[&$version=..]``."""
    topic = f"$iothub/twin/res/{status}/?$rid={rid}"
    if version is not None:
        topic += f"&$version={version}"
    return topic


def desired_patch_topic(version: int) -> str:
    """Return the topic of a desired-properties notification."""
    return f"$iothub/twin/PATCH/properties/desired/?$version={version}"


def method_request_topic(name: str, rid: str) -> str:
    """Return the topic of a direct-method request."""
    return f"$iothub/methods/POST/{name}/?$rid={rid}"
