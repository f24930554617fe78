"""Fixtures shared by the sensor tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from tests.sensors.fakes import FakeClock


@pytest.fixture
def fake_clock() -> FakeClock:
    """Give a clock at 2024-06-21 00:00 UTC that tests move by hand."""
    return FakeClock()


@pytest.fixture
def mock_factory() -> Iterator[MockFactory]:
    """Give gpiozero's MockFactory, also as the global default, then restore it."""
    saved = Device.pin_factory
    factory = MockFactory()
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = saved
