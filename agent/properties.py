"""Writable properties of each module kind: type, range, default, checks.

A desired value is checked here before it reaches a module; a refusal is a
:class:`DesiredRejected` whose reason is shown to the operator verbatim in
the 400 acknowledgement.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import ConfigError, DesiredRejected

# Hours-long intervals are allowed, but a typo like 86400000 is not.
MAX_INTERVAL_S = 86_400.0
MIN_INTERVAL_S = 0.1
# Characters that reorder text on screen (e.g. U+202E) and can disguise it.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

Value = bool | int | float | str


@dataclass(frozen=True, slots=True)
class Property:
    """One writable property: its type, allowed values and default.

    Attributes:
        name: The name in the twin (``sample_interval_s``).
        kind: ``"number"``, ``"integer"``, ``"boolean"`` or ``"string"``.
        default: The value in effect when neither config nor twin sets it;
            ``None`` for a property that has no default: once set, it can be
            changed but not removed.
        minimum: Smallest allowed number, inclusive.
        maximum: Largest allowed number, inclusive; for strings, the
            longest allowed length.
        choices: Allowed strings.
        description: What the property does, for docs and ``get_config``.
        sensor_option: The driver option this property sets, if any; the
            driver's own checks then decide too, and removing the property
            goes back to the option in the config file.
    """

    name: str
    kind: str
    default: Value | None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    description: str = ""
    sensor_option: str | None = None

    def check(self, value: object) -> Value:
        """Return ``value`` if it is allowed, converted to the property's type.

        Raises:
            DesiredRejected: The value has the wrong type or is out of range.
        """
        checked = _check_type(self, value)
        if isinstance(checked, str) and self.maximum is not None:
            _check_length(self, checked)
        elif isinstance(checked, int | float) and not isinstance(checked, bool):
            _check_range(self, checked)
        if self.choices and checked not in self.choices:
            allowed = ", ".join(_show(c) for c in self.choices)
            raise DesiredRejected(
                self.name, f"{_show(checked)} is not one of {allowed}"
            )
        return checked


_COMMON = (
    Property(
        "sample_interval_s",
        "number",
        60.0,
        minimum=MIN_INTERVAL_S,
        maximum=MAX_INTERVAL_S,
        description="Seconds between two readings.",
    ),
    Property(
        "enabled",
        "boolean",
        True,
        description="Whether the module takes and sends readings.",
    ),
    Property(
        "location",
        "string",
        None,
        maximum=64,
        description="Where the sensor sits; sent with every reading once set.",
    ),
    Property(
        "samples_per_reading",
        "integer",
        None,
        minimum=1,
        maximum=15,
        description="Median of this many samples per reading (hardware drivers).",
        sensor_option="samples",
    ),
)

_BY_KIND: dict[str, tuple[Property, ...]] = {
    "moisture": (
        Property(
            "dry_threshold_pct",
            "number",
            30.0,
            minimum=0.0,
            maximum=100.0,
            description="Moisture below which the soil counts as dry.",
        ),
        Property(
            "calibration_dry_raw",
            "number",
            None,
            minimum=-32768.0,
            maximum=65535.0,
            description="Raw ADC reading of the probe in dry soil (ADS1115, MCP3008).",
            sensor_option="dry_raw",
        ),
        Property(
            "calibration_wet_raw",
            "number",
            None,
            minimum=-32768.0,
            maximum=65535.0,
            description="Raw ADC reading of the probe in water (ADS1115, MCP3008).",
            sensor_option="wet_raw",
        ),
    ),
    "light": (
        Property(
            "lux_change_to_report",
            "number",
            0.0,
            minimum=0.0,
            maximum=100_000.0,
            description="Skip a reading that moved less than this (0 sends all).",
        ),
        Property(
            "resolution",
            "string",
            None,
            choices=("high", "high2", "low"),
            description="BH1750 measurement mode: 1 lx, 0.5 lx or 4 lx steps.",
            sensor_option="resolution",
        ),
    ),
    "temperature": (
        Property(
            "unit",
            "string",
            "C",
            choices=("C", "F"),
            description="Unit of the temperature sent in readings.",
        ),
        Property(
            "offset_c",
            "number",
            0.0,
            minimum=-10.0,
            maximum=10.0,
            description="Calibration offset added to every temperature.",
        ),
    ),
}

KINDS = tuple(sorted(_BY_KIND))


def properties_for(kind: str) -> dict[str, Property]:
    """Return the writable properties of a module kind, by name.

    Raises:
        ConfigError: The kind is not known.
    """
    try:
        own = _BY_KIND[kind]
    except KeyError:
        known = ", ".join(KINDS)
        raise ConfigError(
            f"module kind {kind!r} is not known; use one of {known}"
        ) from None
    return {p.name: p for p in (*_COMMON, *own)}


def defaults_for(kind: str) -> dict[str, Value]:
    """Return the built-in defaults of a kind's properties that have one."""
    props = properties_for(kind).values()
    return {p.name: p.default for p in props if p.default is not None}


def check_local(
    kind: str, values: Mapping[str, Any], *, where: str
) -> dict[str, Value]:
    """Check property values from the config file.

    Args:
        kind: The module kind.
        values: The ``properties`` table of one module.
        where: Names the table in error messages, e.g. ``[modules.light]``.

    Raises:
        ConfigError: A name is unknown or a value is refused.
    """
    props = properties_for(kind)
    checked: dict[str, Value] = {}
    for name, value in values.items():
        prop = props.get(name)
        if prop is None:
            known = ", ".join(sorted(props))
            raise ConfigError(
                f"{where} property {name!r} is not known; use one of {known}"
            )
        try:
            checked[name] = prop.check(value)
        except DesiredRejected as err:
            raise ConfigError(f"{where} {err}") from None
    return checked


def _check_type(prop: Property, value: object) -> Value:
    if value is None:
        raise DesiredRejected(
            prop.name, "null is not a value; send a value or remove the key"
        )
    got = _json_type(value)
    if prop.kind == "boolean" and isinstance(value, bool):
        return value
    if prop.kind == "string" and isinstance(value, str):
        return value
    if prop.kind in ("number", "integer") and got == "number":
        assert isinstance(value, int | float)
        if not math.isfinite(value):
            raise DesiredRejected(
                prop.name, f"expected a finite number, got {_number(value)}"
            )
        if prop.kind == "integer" and not float(value).is_integer():
            raise DesiredRejected(
                prop.name, f"expected an integer, got {_number(value)}"
            )
        return int(value) if prop.kind == "integer" else float(value)
    expected = "a number" if prop.kind == "integer" else f"a {prop.kind}"
    raise DesiredRejected(prop.name, f"expected {expected}, got {got} {_show(value)}")


def _check_range(prop: Property, value: float) -> None:
    low = -math.inf if prop.minimum is None else prop.minimum
    high = math.inf if prop.maximum is None else prop.maximum
    if not low <= value <= high:
        raise DesiredRejected(
            prop.name,
            f"{_number(value)} is out of range; use a value from "
            f"{_number(low)} to {_number(high)}",
        )


def _check_length(prop: Property, value: str) -> None:
    assert prop.maximum is not None
    if not value or len(value) > prop.maximum:
        raise DesiredRejected(
            prop.name,
            f"{len(value)} characters; use 1 to {_number(prop.maximum)} characters",
        )
    if any(
        unicodedata.category(c) in ("Cc", "Cs") or c in _BIDI_CONTROLS for c in value
    ):
        raise DesiredRejected(
            prop.name, "control characters are not allowed; send printable text"
        )
    if not value.strip():
        raise DesiredRejected(prop.name, "only spaces; send some text")


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _show(value: object) -> str:
    # Shown as JSON, the way the operator wrote it in the twin.
    text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: float) -> str:
    """Spell a number exactly, without a trailing ``.0`` for whole ones."""
    if abs(value) < 1e15 and float(value).is_integer():
        return str(int(value))
    return repr(float(value))
