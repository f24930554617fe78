"""Soil moisture from an ADC count: the calibration every analog driver shares.

A capacitive probe reads *lower* when wet (its capacitance rises and the
output voltage falls); a resistive probe reads higher. Calibration takes the
count in dry air and in water, in either order, and maps counts linearly
between them to 0..100 %, clamped.
"""

from __future__ import annotations

from dataclasses import dataclass

from sensors.base import SensorMisconfigured
from sensors.sampling import SamplingConfig

__all__ = ["MoistureCalibration", "moisture_pct"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MoistureCalibration(SamplingConfig):
    """Calibration options of the analog moisture drivers.

    Attributes:
        dry_raw: The count with the probe in dry air (0 %).
        wet_raw: The count with the probe in water (100 %).
    """

    dry_raw: float
    wet_raw: float

    def __post_init__(self) -> None:
        super(MoistureCalibration, self).__post_init__()
        if self.dry_raw == self.wet_raw:
            raise SensorMisconfigured(
                f"options 'dry_raw' and 'wet_raw' are both {self.dry_raw:g}; "
                "read the probe in dry air and in water and set each to "
                "the moisture_raw it reports"
            )


def moisture_pct(raw: float, calibration: MoistureCalibration) -> float:
    """Map a count to percent between the dry and wet counts, 0 to 100."""
    dry, wet = calibration.dry_raw, calibration.wet_raw
    share = (raw - dry) / (wet - dry)
    return round(min(max(share, 0.0), 1.0) * 100, 2)
