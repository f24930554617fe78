"""Check a driver's options table against its config dataclass."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from sensors.base import SensorMisconfigured

__all__ = ["parse_options", "require"]

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_ConfigT = TypeVar("_ConfigT", bound="DataclassInstance")


def parse_options(
    config_type: type[_ConfigT],
    options: Mapping[str, object],
    *,
    driver: str,
) -> _ConfigT:
    """Build a driver's config dataclass from its options table.

    Every field of ``config_type`` is an option; its annotation gives the
    accepted type. Integers are accepted where a number is expected, lists
    where a tuple of strings is, and ISO 8601 strings where a date-time is.

    Args:
        config_type: A dataclass whose fields are the driver's options.
        options: The table from the config file, e.g. ``{"speed": 60}``.
        driver: The driver name, used in messages.

    Returns:
        The config, which may check ranges itself in ``__post_init__``.

    Raises:
        SensorMisconfigured: An option is unknown, missing or of the wrong
            type, or out of range.
    """
    fields = {f.name: f for f in dataclasses.fields(config_type)}
    _reject_unknown(options, sorted(fields), driver=driver)
    hints = typing.get_type_hints(config_type)
    values = {
        name: _convert(name, value, hints[name]) for name, value in options.items()
    }
    for name, spec in fields.items():
        if name not in values and _is_required(spec):
            raise SensorMisconfigured(
                f"sensor driver {driver!r} needs option {name!r}; "
                f"add {name} = ... to its sensor table"
            )
    return config_type(**values)


def require(ok: bool, name: str, value: object, rule: str, fix: str) -> None:
    """Raise unless ``ok``: the message names the option, its value and a fix.

    Args:
        ok: Whether the value passed the check.
        name: The option name.
        value: The value seen.
        rule: What the value must be, e.g. ``"above 0"``.
        fix: What to write instead, e.g. ``"speed = 60"``.

    Raises:
        SensorMisconfigured: ``ok`` is false.
    """
    if not ok:
        raise SensorMisconfigured(f"option {name!r} = {value!r} must be {rule}; {fix}")


def _reject_unknown(
    options: Mapping[str, object], known: list[str], *, driver: str
) -> None:
    for name in options:
        if name not in known:
            raise SensorMisconfigured(
                f"unknown option {name!r} for sensor driver {driver!r}; "
                f"use one of: {', '.join(known)}"
            )


def _is_required(spec: dataclasses.Field[object]) -> bool:
    return (
        spec.default is dataclasses.MISSING
        and spec.default_factory is dataclasses.MISSING
    )


def _convert(name: str, value: object, expected: object) -> object:
    if typing.get_origin(expected) in (types.UnionType, typing.Union):
        if value is None:
            return None
        expected = next(t for t in typing.get_args(expected) if t is not type(None))
    kind, convert = _CONVERTERS.get(_key(expected), _UNSUPPORTED)
    converted = convert(value)
    if converted is None:
        raise SensorMisconfigured(
            f"option {name!r} = {value!r} is not {kind}; "
            + _EXAMPLES[kind].format(name=name)
        )
    return converted


def _key(expected: object) -> object:
    # tuple[str, ...] is the only generic an option may have.
    return tuple if typing.get_origin(expected) is tuple else expected


def _to_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _to_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _to_bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _to_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _to_datetime(value: object) -> dt.datetime | None:
    # TOML gives a datetime; a string is welcome from JSON or the command line.
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _to_names(value: object) -> tuple[str, ...] | None:
    if not isinstance(value, list | tuple):
        return None
    if not all(isinstance(item, str) for item in value):
        return None
    return tuple(value)


_CONVERTERS: Mapping[object, tuple[str, Callable[[object], object | None]]] = {
    float: ("a finite number", _to_float),
    int: ("a whole number", _to_int),
    bool: ("true or false", _to_bool),
    str: ("a string", _to_str),
    dt.datetime: ("a date-time", _to_datetime),
    tuple: ("a list of names", _to_names),
}
_UNSUPPORTED: tuple[str, Callable[[object], object | None]] = (
    "of a supported type",
    lambda _: None,
)
_EXAMPLES: Mapping[str, str] = {
    "a finite number": "write a number, e.g. {name} = 1.0",
    "a whole number": "write a whole number, e.g. {name} = 3",
    "true or false": "write {name} = true or {name} = false",
    "a string": 'write a quoted string, e.g. {name} = "..."',
    "a date-time": "write an ISO 8601 date-time, e.g. {name} = 2024-06-21T00:00:00Z",
    "a list of names": 'write a list of quoted names, e.g. {name} = ["a", "b"]',
    "of a supported type": "this option cannot be set from a config file",
}
