"""The twin's wire format: the only module that knows ``$version`` and ``ac/av/ad``.

Everything past this boundary speaks of ``desired_version`` and
:class:`PropertyAck`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import TwinError

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class DesiredDocument:
    """Desired properties as received, without the hub's ``$`` members.

    Attributes:
        desired_version: The desired ``$version`` this document carries.
        members: Property name to value; ``None`` means removed (patches only).
    """

    desired_version: int
    members: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PropertyAck:
    """Acknowledgement of one writable property (IoT Plug and Play convention).

    Attributes:
        value: The value now in effect (``None`` when there is none to show).
        status: 200 applied, 400 rejected.
        version: The desired version being acknowledged.
        description: Why, in words a person can act on.
    """

    value: Any
    status: int
    version: int
    description: str


def parse_desired(document: Mapping[str, Any]) -> DesiredDocument:
    """Split a desired document or patch into its version and members.

    Raises:
        TwinError: The document has no integer ``$version``.
    """
    version = document.get("$version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise TwinError(
            f"desired properties carry no integer $version (got {version!r}); "
            "the hub sent a malformed document"
        )
    members = {k: v for k, v in document.items() if not k.startswith("$")}
    return DesiredDocument(version, members)


def desired_from_twin(twin: Mapping[str, Any]) -> DesiredDocument:
    """Return the desired section of a twin as the device sees it.

    Raises:
        TwinError: The twin has no desired section.
    """
    desired = twin.get("desired")
    if not isinstance(desired, dict):
        raise TwinError("twin has no desired section; the hub sent a malformed twin")
    return parse_desired(desired)


def encode_ack(ack: PropertyAck) -> JsonObject:
    """Return the reported form ``{"value", "ac", "av", "ad"}`` of an ack.

    ``value`` is left out when there is none: a ``null`` inside a reported
    patch would delete the member instead of reporting it.
    """
    encoded: JsonObject = {"ac": ack.status, "av": ack.version, "ad": ack.description}
    if ack.value is not None:
        encoded["value"] = ack.value
    return encoded


def encode_acks(acks: Mapping[str, PropertyAck]) -> JsonObject:
    """Return a reported patch holding one ack per property."""
    return {name: encode_ack(ack) for name, ack in acks.items()}
