"""Module twin semantics: merge, versions, metadata and limits (pure).

This is the one module that spells IoT Hub's twin wire names (``$version``,
``$metadata``, ``$lastUpdated``). Rules follow "Understand and use device
twins" and "Understand and use module twins" (Microsoft Learn, 2024-02-22),
summarised in the reference's §5.
"""

import base64
import json
import struct
from dataclasses import dataclass, replace
from typing import Literal, TypeGuard

from devhub.errors import BadRequest, TwinRuleError

JsonObject = dict[str, object]
SectionName = Literal["tags", "desired", "reported"]

MAX_DEPTH = 10
MAX_KEY_BYTES = 1024
MAX_STRING_BYTES = 4096
MAX_INT = 2**52 - 1
MIN_INT = -(2**52)
SECTION_LIMIT_BYTES: dict[SectionName, int] = {
    "tags": 8 * 1024,
    "desired": 32 * 1024,
    "reported": 32 * 1024,
}
NUMBER_SIZE_BYTES = 8
BOOLEAN_SIZE_BYTES = 4
# Read-only members a service client may echo back from a GET; ignored.
_READ_ONLY = ("$metadata", "$version")
_FORBIDDEN_KEY_CHARS = frozenset(".$ ")


@dataclass(frozen=True, slots=True)
class TwinSection:
    """Desired or reported properties with their metadata and version."""

    properties: JsonObject
    metadata: JsonObject
    version: int


@dataclass(frozen=True, slots=True)
class ModuleTwin:
    """Everything the hub keeps for one twin.

    Attributes:
        tags: Service-only tags.
        desired: Desired properties.
        reported: Reported properties.
        version: Twin version; counts changes to tags and desired.
        etag_seq: Counts every change; the etag is derived from it.
    """

    tags: JsonObject
    desired: TwinSection
    reported: TwinSection
    version: int = 1
    etag_seq: int = 1

    @property
    def etag(self) -> str:
        """Return the twin's etag, opaque base64 like IoT Hub's."""
        return base64.b64encode(struct.pack(">q", self.etag_seq)).decode("ascii")


def new_twin(now: str) -> ModuleTwin:
    """Return the twin of a new identity: both ``$version`` start at 1."""
    stamp: JsonObject = {"$lastUpdated": now}
    desired = TwinSection({}, {**stamp, "$lastUpdatedVersion": 1}, 1)
    return ModuleTwin(tags={}, desired=desired, reported=TwinSection({}, stamp, 1))


def parse_json_object(payload: bytes | str, *, what: str) -> JsonObject:
    """Parse ``payload`` as a JSON object.

    Raises:
        BadRequest: The payload is not JSON, or not an object.
    """
    try:
        value = json.loads(payload, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(f"{what} is not valid JSON ({err}); send an object") from None
    if not isinstance(value, dict):
        kind = type(value).__name__
        raise BadRequest(f"{what} is a JSON {kind}; send an object")
    return value


def apply_reported_patch(twin: ModuleTwin, patch: JsonObject, now: str) -> ModuleTwin:
    """Return ``twin`` with a module's reported patch merged in.

    Raises:
        TwinRuleError: The patch or the result breaks a twin rule.
    """
    reported = _patch_section(twin.reported, patch, "reported", now)
    return replace(twin, reported=reported, etag_seq=twin.etag_seq + 1)


def apply_service_patch(
    twin: ModuleTwin, body: JsonObject, now: str
) -> tuple[ModuleTwin, JsonObject | None]:
    """Return ``twin`` with a service PATCH applied, and the desired patch.

    Args:
        twin: The current twin.
        body: ``{"properties": {"desired": {...}}, "tags": {...}}``.
        now: The update time, ISO 8601 UTC.

    Returns:
        The new twin, and the desired members submitted (None if none were),
        which is what the module is notified of.

    Raises:
        BadRequest: The body is malformed or tries to write reported.
        TwinRuleError: The patch or the result breaks a twin rule.
    """
    desired_patch, tags_patch = _split_service_patch(body)
    if desired_patch is None and tags_patch is None:
        return twin, None
    new = replace(twin, version=twin.version + 1, etag_seq=twin.etag_seq + 1)
    if tags_patch is not None:
        validate_patch(tags_patch, "tags")
        tags = merge(twin.tags, tags_patch)
        _check_section_size(tags, "tags")
        new = replace(new, tags=tags)
    if desired_patch is not None:
        desired = _patch_section(twin.desired, desired_patch, "desired", now)
        new = replace(new, desired=desired)
    return new, desired_patch


def apply_service_replace(
    twin: ModuleTwin, body: JsonObject, now: str
) -> tuple[ModuleTwin, JsonObject | None]:
    """Return ``twin`` with a service PUT applied, and the desired patch.

    A section present in ``body`` is replaced whole; an absent one is kept.
    Reported properties in ``body`` are ignored: a service client replacing
    a twin it read sends them back, and only the module writes them.

    Returns:
        The new twin, and what the module is notified of: the new desired
        document plus null for every key it no longer has (reference §5.3).
        None if ``body`` has no desired section.

    Raises:
        BadRequest: The body is malformed.
        TwinRuleError: The new document breaks a twin rule.
    """
    properties = _optional_object(body.get("properties"), "properties") or {}
    desired = _optional_object(properties.get("desired"), "properties.desired")
    tags = _optional_object(body.get("tags"), "tags")
    if desired is None and tags is None:
        return twin, None
    new = replace(twin, version=twin.version + 1, etag_seq=twin.etag_seq + 1)
    if tags is not None:
        validate_patch(tags, "tags")
        _check_section_size(tags, "tags")
        new = replace(new, tags=tags)
    if desired is None:
        return new, None
    desired = {k: v for k, v in desired.items() if k not in _READ_ONLY}
    patch = replacement_patch(twin.desired.properties, desired)
    section = _patch_section(twin.desired, patch, "desired", now)
    return replace(new, desired=section), patch


def replacement_patch(old: JsonObject, new: JsonObject) -> JsonObject:
    """Return ``new`` with null for each key of ``old`` it lacks, nested too."""
    patch: JsonObject = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            patch[key] = replacement_patch(before, value)
        else:
            patch[key] = value
    return patch


def notification(desired_patch: JsonObject, version: int) -> JsonObject:
    """Return a desired-patch notification body: the members and version."""
    return {**desired_patch, "$version": version}


def device_document(twin: ModuleTwin) -> JsonObject:
    """Return the twin as a device or module sees it (GET over MQTT)."""
    return {
        "desired": {**twin.desired.properties, "$version": twin.desired.version},
        "reported": {**twin.reported.properties, "$version": twin.reported.version},
    }


def service_properties(twin: ModuleTwin) -> JsonObject:
    """Return ``properties`` of the service view, with metadata."""
    return {
        name: {
            **section.properties,
            "$metadata": section.metadata,
            "$version": section.version,
        }
        for name, section in (("desired", twin.desired), ("reported", twin.reported))
    }


def merge(document: JsonObject, patch: JsonObject) -> JsonObject:
    """Return ``document`` with ``patch`` merged in; null removes a member."""
    merged = dict(document)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict):
            current = document.get(key)
            merged[key] = merge(current if isinstance(current, dict) else {}, value)
        else:
            merged[key] = value
    return merged


def validate_patch(patch: JsonObject, section: SectionName) -> None:
    """Check names, types, string sizes and depth of a patch.

    Raises:
        TwinRuleError: The first rule broken, naming the property path.
    """
    _check_object(patch, section, section, depth=1)


def section_size(document: JsonObject) -> int:
    """Return a section's size as IoT Hub counts it against its limit.

    Keys and strings count their characters less control characters,
    numbers 8 bytes, booleans 4, objects the sum of their contents.
    """
    total = 0
    for key, value in document.items():
        total += _text_size(key)
        if isinstance(value, dict):
            total += section_size(value)
        elif isinstance(value, bool):
            total += BOOLEAN_SIZE_BYTES
        elif isinstance(value, str):
            total += _text_size(value)
        else:
            total += NUMBER_SIZE_BYTES
    return total


def _patch_section(
    section: TwinSection, patch: JsonObject, name: SectionName, now: str
) -> TwinSection:
    validate_patch(patch, name)
    properties = merge(section.properties, patch)
    _check_section_size(properties, name)
    version = section.version + 1
    # Service views carry $lastUpdatedVersion in desired metadata only.
    stamp_version = version if name == "desired" else None
    metadata = _merge_metadata(section.metadata, patch, now, stamp_version)
    return TwinSection(properties, metadata, version)


def _merge_metadata(
    metadata: JsonObject, patch: JsonObject, now: str, version: int | None
) -> JsonObject:
    stamp: JsonObject = {"$lastUpdated": now}
    if version is not None:
        stamp["$lastUpdatedVersion"] = version
    merged = {**metadata, **stamp}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict):
            child = metadata.get(key)
            child = child if isinstance(child, dict) else {}
            merged[key] = _merge_metadata(child, value, now, version)
        else:
            merged[key] = dict(stamp)
    return merged


def _split_service_patch(
    body: JsonObject,
) -> tuple[JsonObject | None, JsonObject | None]:
    properties = body.get("properties", {})
    if not isinstance(properties, dict):
        raise BadRequest("twin patch 'properties' is not an object; send an object")
    if properties.get("reported") is not None:
        raise BadRequest(
            "twin patch writes properties.reported; only the module can write it"
        )
    desired = _optional_object(properties.get("desired"), "properties.desired")
    if desired is not None:
        desired = {k: v for k, v in desired.items() if k not in _READ_ONLY}
    return desired or None, _optional_object(body.get("tags"), "tags")


def _optional_object(value: object, name: str) -> JsonObject | None:
    if value is None or isinstance(value, dict):
        return value
    kind = type(value).__name__
    raise BadRequest(f"twin patch '{name}' is a {kind}; send an object")


def _check_object(
    value: JsonObject, path: str, section: SectionName, depth: int
) -> None:
    if depth > MAX_DEPTH:
        raise TwinRuleError(
            f"{path} is nested {depth} levels deep; "
            f"twins allow at most {MAX_DEPTH}, flatten the object"
        )
    for key, member in value.items():
        _check_key(key, path)
        _check_value(member, f"{path}.{key}", section, depth)


def _check_key(key: str, path: str) -> None:
    size = _utf8_size(key, f"{path} key")
    if not key or size > MAX_KEY_BYTES:
        raise TwinRuleError(
            f"{path} has a key of {size} bytes; use 1 to {MAX_KEY_BYTES} bytes"
        )
    bad = sorted({c for c in key if c in _FORBIDDEN_KEY_CHARS or _is_control(c)})
    if bad:
        raise TwinRuleError(
            f"{path} key {key!r} contains {''.join(bad)!r}; "
            "keys may not contain '.', '$', spaces or control characters"
        )


def _check_value(value: object, path: str, section: SectionName, depth: int) -> None:
    if isinstance(value, dict):
        _check_object(value, path, section, depth + 1)
    elif isinstance(value, list):
        # Module twin docs forbid arrays; the device twin doc allows them
        # (reference §5.5, CONFLICT). Refusing is the safe side for modules.
        raise TwinRuleError(f"{path} is an array; module twins take objects only")
    elif isinstance(value, str) and _utf8_size(value, path) > MAX_STRING_BYTES:
        raise TwinRuleError(
            f"{path} is a string of {_utf8_size(value, path)} bytes; "
            f"strings may have at most {MAX_STRING_BYTES}"
        )
    elif _is_int(value) and not MIN_INT <= value <= MAX_INT:
        raise TwinRuleError(f"{path} = {value} is outside ±2^52; send a string")


def _check_section_size(document: JsonObject, section: SectionName) -> None:
    size = section_size(document)
    limit = SECTION_LIMIT_BYTES[section]
    if size > limit:
        raise TwinRuleError(
            f"{section} would be {size} bytes; the limit is {limit}, "
            "remove or shorten properties"
        )


def _utf8_size(text: str, path: str) -> int:
    # JSON escapes can spell a lone surrogate, which no UTF-8 text holds.
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise TwinRuleError(
            f"{path} holds a lone surrogate (\\ud800-\\udfff escape); "
            "send valid Unicode text"
        ) from None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _text_size(text: str) -> int:
    return sum(1 for char in text if not _is_control(char))


def _is_control(char: str) -> bool:
    return ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN and Infinity by default; JSON does not.
    raise ValueError(f"{name} is not valid JSON")
