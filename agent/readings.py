"""Turn a sensor reading into the telemetry body a module sends.

What a module's writable properties do to its readings lives here: the
temperature unit and offset, the light change filter, the moisture dry flag.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.properties import Value
from sensors.base import Reading


class ReadingShaper:
    """Builds telemetry bodies for one module kind.

    Args:
        kind: The module kind, which picks the rules applied.
    """

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._last_lux: float | None = None

    def shape(
        self,
        reading: Reading,
        effective: Mapping[str, Value],
    ) -> dict[str, Any] | None:
        """Return the fields to send for ``reading``, or ``None`` to skip it."""
        values: dict[str, Any] = {
            k: v if isinstance(v, bool) else round(v, 3)
            for k, v in reading.values.items()
        }
        if self._kind == "temperature":
            _apply_temperature(values, effective)
        elif self._kind == "light" and self._skip_light(values, effective):
            return None
        elif self._kind == "moisture" and "moisture_pct" in values:
            threshold = float(effective["dry_threshold_pct"])
            values["dry"] = values["moisture_pct"] < threshold
        fields: dict[str, Any] = {
            "taken_at": reading.taken_at.isoformat(timespec="milliseconds"),
            **values,
        }
        if "location" in effective:
            fields["location"] = effective["location"]
        return fields

    def _skip_light(
        self, values: dict[str, Any], effective: Mapping[str, Value]
    ) -> bool:
        lux = values.get("illuminance_lux")
        if lux is None:
            return False
        change = float(effective["lux_change_to_report"])
        if self._last_lux is not None and abs(lux - self._last_lux) < change:
            return True
        self._last_lux = lux
        return False


def _apply_temperature(values: dict[str, Any], effective: Mapping[str, Value]) -> None:
    celsius = values.pop("temperature_c", None)
    if celsius is None:
        return
    celsius += float(effective["offset_c"])
    if effective["unit"] == "F":
        values["temperature_f"] = round(celsius * 9 / 5 + 32, 3)
    else:
        values["temperature_c"] = round(celsius, 3)
