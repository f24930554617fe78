import pytest

from devhub import topics
from devhub.topics import Principal, Route

MODULE = Principal("pi", "light")
DEVICE = Principal("pi")


@pytest.mark.parametrize(
    ("topic", "route"),
    [
        ("devices/pi/modules/light/messages/events/", Route.TELEMETRY),
        ("devices/pi/modules/light/messages/events/%24.mid=1", Route.TELEMETRY),
        ("$iothub/twin/GET/?$rid=1", Route.TWIN_GET),
        ("$iothub/twin/PATCH/properties/reported/?$rid=1", Route.REPORTED_PATCH),
        ("$iothub/methods/res/200/?$rid=1", Route.METHOD_RESPONSE),
        ("devices/pi/modules/moisture/messages/events/", None),
        ("devices/pi/messages/events/", None),
        ("$iothub/twin/PATCH/properties/desired/?$rid=1", None),
        ("anything/else", None),
    ],
)
def test_route_publish_allows_only_own_topics(topic: str, route: Route | None) -> None:
    """Test a module's publish access control."""
    assert topics.route_publish(MODULE, topic) is route


def test_device_identity_uses_device_topics() -> None:
    """Test that a device identity publishes and subscribes as a device."""
    assert (
        topics.route_publish(DEVICE, "devices/pi/messages/events/") is Route.TELEMETRY
    )
    assert "devices/pi/messages/devicebound/#" in topics.allowed_filters(DEVICE)
    assert DEVICE.client_id == "pi"


def test_allowed_filters_of_a_module() -> None:
    """Test the four filters a module may subscribe to."""
    assert topics.allowed_filters(MODULE) == {
        "$iothub/twin/res/#",
        "$iothub/twin/PATCH/properties/desired/#",
        "$iothub/methods/POST/#",
        "devices/pi/modules/light/inputs/#",
    }


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("$iothub/twin/res/#", "$iothub/twin/res/200/?$rid=1", True),
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/b", "a/b/c", False),
        ("a/#", "a", True),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, matches: bool) -> None:
    """Test MQTT filter matching (§4.7)."""
    assert topics.topic_matches(topic_filter, topic) is matches


def test_property_bag_is_url_decoded() -> None:
    """Test %24 keys, encoded values, key-only and empty values (§3.3, §3.4)."""
    bag = "%24.mid=m%201&%24.ct=application%2Fjson&k%26=v%3D+&flag&empty="

    assert topics.parse_property_bag(bag) == {
        "$.mid": "m 1",
        "$.ct": "application/json",
        "k&": "v=+",
        "flag": None,
        "empty": "",
    }


def test_query_values_are_kept_verbatim_for_echo() -> None:
    """Test that $rid is echoed exactly as the client sent it."""
    assert topics.parse_query("$iothub/twin/GET/?$rid=a%20b") == {"$rid": "a%20b"}
