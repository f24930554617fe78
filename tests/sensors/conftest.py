"""Fixtures shared by the sensor tests."""

from __future__ import annotations

import pytest

from tests.sensors.fakes import FakeClock


@pytest.fixture
def fake_clock() -> FakeClock:
    """Give a clock at 2024-06-21 00:00 UTC that tests move by hand."""
    return FakeClock()
