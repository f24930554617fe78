import pytest

from devhub import twins
from devhub.errors import BadRequest, TwinRuleError

NOW = "2026-01-02T03:04:05.678Z"
LATER = "2026-01-02T03:04:06.000Z"


def test_new_twin_starts_at_version_one() -> None:
    """Test the initial twin of a new module identity."""
    twin = twins.new_twin(NOW)

    assert twins.device_document(twin) == {
        "desired": {"$version": 1},
        "reported": {"$version": 1},
    }


def test_merge_adds_overwrites_and_null_deletes() -> None:
    """Test partial-update semantics, nested objects included."""
    document = {"a": 1, "b": {"c": 2, "d": 3}, "e": 4}

    merged = twins.merge(document, {"a": 10, "b": {"c": None, "f": 5}, "e": None})

    assert merged == {"a": 10, "b": {"d": 3, "f": 5}}
    assert document == {"a": 1, "b": {"c": 2, "d": 3}, "e": 4}


def test_reported_patch_bumps_only_reported_version() -> None:
    """Test that reported and desired versions are separate counters."""
    twin = twins.new_twin(NOW)

    patched = twins.apply_reported_patch(twin, {"x": 1}, LATER)

    assert patched.reported.version == 2
    assert patched.desired.version == 1
    assert patched.version == twin.version
    assert patched.etag != twin.etag


def test_service_patch_returns_the_submitted_members_for_notification() -> None:
    """Test that the notification is exactly the submitted desired members."""
    twin = twins.apply_service_patch(
        twins.new_twin(NOW), {"properties": {"desired": {"a": 1, "b": 2}}}, NOW
    )[0]
    body = {"properties": {"desired": {"a": 1, "b": None, "$version": 99}}}

    patched, submitted = twins.apply_service_patch(twin, body, LATER)

    assert submitted == {"a": 1, "b": None}
    assert twins.notification(submitted, patched.desired.version) == {
        "a": 1,
        "b": None,
        "$version": 3,
    }
    assert patched.desired.properties == {"a": 1}


def test_service_view_keeps_metadata_per_property() -> None:
    """Test $metadata with $lastUpdated and $lastUpdatedVersion on desired."""
    twin = twins.apply_service_patch(
        twins.new_twin(NOW), {"properties": {"desired": {"a": {"b": 1}}}}, LATER
    )[0]

    desired = twins.service_properties(twin)["desired"]

    assert desired == {
        "a": {"b": 1},
        "$metadata": {
            "$lastUpdated": LATER,
            "$lastUpdatedVersion": 2,
            "a": {
                "$lastUpdated": LATER,
                "$lastUpdatedVersion": 2,
                "b": {"$lastUpdated": LATER, "$lastUpdatedVersion": 2},
            },
        },
        "$version": 2,
    }


def test_tags_only_patch_leaves_desired_alone() -> None:
    """Test that a tags patch bumps the twin version, not desired."""
    twin = twins.new_twin(NOW)

    patched, submitted = twins.apply_service_patch(
        twin, {"tags": {"SecurityGroup": "pi"}}, LATER
    )

    assert submitted is None
    assert patched.tags == {"SecurityGroup": "pi"}
    assert (patched.version, patched.desired.version) == (2, 1)


def _nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


BAD_PATCHES = {
    "dollar key": ({"$x": 1}, "keys may not contain"),
    "dot key": ({"a.b": 1}, "keys may not contain"),
    "space key": ({"a b": 1}, "keys may not contain"),
    "control key": ({"a\x01": 1}, "keys may not contain"),
    "empty key": ({"": 1}, "key of 0 bytes"),
    "long key": ({"k" * 1025: 1}, "key of 1025 bytes"),
    "long string": ({"s": "x" * 4097}, "string of 4097 bytes"),
    "array": ({"a": [1, 2]}, "is an array"),
    "huge integer": ({"i": 2**53}, "outside"),
    "lone surrogate value": ({"s": "\ud800"}, "lone surrogate"),
    "lone surrogate key": ({"\udfff": 1}, "lone surrogate"),
    "too deep": (_nested(11), "nested 11 levels"),
    "section too big": ({f"k{i}": "x" * 4000 for i in range(9)}, "the limit is 32768"),
}


@pytest.mark.parametrize(("patch", "message"), BAD_PATCHES.values(), ids=BAD_PATCHES)
def test_reported_patch_breaking_a_rule_is_refused(
    patch: twins.JsonObject, message: str
) -> None:
    """Test that each twin rule is enforced with a message naming it."""
    with pytest.raises(TwinRuleError, match=message):
        twins.apply_reported_patch(twins.new_twin(NOW), patch, LATER)


def test_depth_of_ten_is_allowed() -> None:
    """Test the boundary of the depth rule."""
    patched = twins.apply_reported_patch(twins.new_twin(NOW), _nested(10), LATER)

    assert patched.reported.version == 2


def test_section_size_counts_as_documented() -> None:
    """Test key/string characters, 8 bytes per number, 4 per boolean."""
    size = twins.section_size({"ab": "xyz", "n": 1.5, "b": True, "o": {"k": 1}})

    assert size == (2 + 3) + (1 + 8) + (1 + 4) + (1 + 1 + 8)


def test_service_patch_may_not_write_reported() -> None:
    """Test that reported properties are read-only for the service."""
    with pytest.raises(BadRequest, match="only the module can write it"):
        twins.apply_service_patch(
            twins.new_twin(NOW), {"properties": {"reported": {"a": 1}}}, LATER
        )


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"{", "not valid JSON"), (b"[1]", "JSON list"), (b'{"a": NaN}', "NaN")],
    ids=["truncated", "list", "nan"],
)
def test_parse_json_object_refuses_non_objects(payload: bytes, message: str) -> None:
    """Test that only JSON objects are accepted as patches."""
    with pytest.raises(BadRequest, match=message):
        twins.parse_json_object(payload, what="reported patch")
