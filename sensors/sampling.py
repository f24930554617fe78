"""Options every hardware driver shares, and the median of several samples."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sensors.options import require

__all__ = ["MAX_SAMPLES", "MAX_TIMEOUT_S", "SamplingConfig", "median_values"]

MAX_SAMPLES = 15
# The agent gives a whole read 10 s; one call must leave room for the rest.
MAX_TIMEOUT_S = 9.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SamplingConfig:
    """Options of every hardware driver.

    Attributes:
        samples: Samples taken per reading; the reading is their median,
            which drops a lone spike (1 to 15).
        timeout_s: Deadline of one blocking call to the part, in seconds.
    """

    samples: int = 1
    timeout_s: float = 2.0

    def __post_init__(self) -> None:
        require(
            1 <= self.samples <= MAX_SAMPLES,
            "samples",
            self.samples,
            f"from 1 to {MAX_SAMPLES}",
            "e.g. samples = 3",
        )
        require(
            0 < self.timeout_s <= MAX_TIMEOUT_S,
            "timeout_s",
            self.timeout_s,
            f"above 0 and at most {MAX_TIMEOUT_S:g}",
            "e.g. timeout_s = 2",
        )


def median_values(samples: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Return the median of each quantity over samples that all carry it.

    Args:
        samples: At least one sample; each maps quantity names to values.

    Raises:
        ValueError: ``samples`` is empty.
    """
    if not samples:
        raise ValueError("median of no samples")
    return {
        name: statistics.median(sample[name] for sample in samples)
        for name in samples[0]
    }
