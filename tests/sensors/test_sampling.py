"""Tests for the options every hardware driver shares and the median helper."""

from __future__ import annotations

import pytest

from sensors.base import SensorMisconfigured
from sensors.sampling import SamplingConfig, median_values


def test_median_is_taken_per_quantity() -> None:
    """Test that a lone spike in each quantity is dropped."""
    samples = [
        {"temperature_c": 21.0, "humidity_pct": 99.0},
        {"temperature_c": 85.0, "humidity_pct": 40.0},
        {"temperature_c": 21.5, "humidity_pct": 41.0},
    ]

    assert median_values(samples) == {"temperature_c": 21.5, "humidity_pct": 41.0}


def test_median_of_one_sample_is_that_sample() -> None:
    """Test that samples = 1 passes the value through."""
    assert median_values([{"illuminance_lux": 312.5}]) == {"illuminance_lux": 312.5}


def test_median_of_nothing_is_refused() -> None:
    """Test that an empty list is a programming error, not a zero."""
    with pytest.raises(ValueError, match="median of no samples"):
        median_values([])


def test_samples_out_of_range_say_what_to_write() -> None:
    """Test the message for samples = 0."""
    with pytest.raises(SensorMisconfigured) as caught:
        SamplingConfig(samples=0)

    assert str(caught.value) == (
        "option 'samples' = 0 must be from 1 to 15; e.g. samples = 3"
    )


def test_timeout_beyond_the_agents_deadline_is_refused() -> None:
    """Test that one call may not outlast the agent's 10 s read deadline."""
    with pytest.raises(SensorMisconfigured) as caught:
        SamplingConfig(timeout_s=12)

    assert str(caught.value) == (
        "option 'timeout_s' = 12 must be above 0 and at most 9; e.g. timeout_s = 2"
    )
