import datetime as dt
from typing import Any

import pytest

from agent.errors import SensorMisconfigured
from agent.sensorkeeper import SensorKeeper
from sensors.base import Sensor
from sensors.bh1750 import create_bh1750
from tests.sensors.fake_smbus import FakeBH1750, FakeSMBus
from tests.sensors.fakes import FakeClock

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
ADDRESS = 0x23


class Keeper:
    """A BH1750 on a fake bus behind a SensorKeeper, with its reports."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.bus = FakeSMBus()
        self.reports: list[dict[str, Any]] = []
        self.keeper = SensorKeeper(
            "light",
            "bh1750",
            self.build({}),
            build=self.build,
            options={},
            report=self.reports.append,
            now=lambda: NOW,
        )

    def build(self, options: Any) -> Sensor:
        return create_bh1750(options, clock=self.clock, bus=self.bus)

    def plug_in(self, lux: float) -> None:
        self.bus.chips[ADDRESS] = FakeBH1750(self.clock, lux=lux)


@pytest.fixture
def light() -> Keeper:
    return Keeper()


async def test_missing_sensor_degrades_after_repeated_failures(light: Keeper) -> None:
    """Test that one failed read is tolerated and a run of them degrades."""
    assert await light.keeper.sample() is None
    assert await light.keeper.sample() is None
    assert light.keeper.state == ""

    assert await light.keeper.sample() is None

    summary = light.reports[-1]["sensor"]
    assert light.keeper.state == "degraded"
    assert (summary["state"], summary["driver"], summary["error_rate"]) == (
        "degraded",
        "bh1750",
        1.0,
    )
    assert summary["last_error"].startswith("BH1750 on I2C 0x23")
    assert "last_good" not in summary


async def test_sensor_plugged_in_later_recovers_without_rebuild(light: Keeper) -> None:
    """Test that a degraded module reads again once its sensor appears."""
    for _ in range(3):
        await light.keeper.sample()

    light.plug_in(lux=240.0)
    reading = await light.keeper.sample()

    assert reading is not None
    assert reading.values["illuminance_lux"] == pytest.approx(240.0, rel=0.02)
    summary = light.reports[-1]["sensor"]
    assert summary["state"] == "ok"
    assert summary["last_good"] == "2026-12-04T12:00:00+00:00"
    assert summary["error_rate"] == 0.75


async def test_failing_sensor_is_retried_less_and_less_often(light: Keeper) -> None:
    """Test that the retry delay doubles past the degraded mark, up to a cap."""
    delays = []
    for _ in range(8):
        delays.append(light.keeper.retry_delay_s(60.0))
        await light.keeper.sample()

    assert delays == [60.0, 60.0, 60.0, 120.0, 240.0, 300.0, 300.0, 300.0]


async def test_new_settings_are_checked_by_the_driver(light: Keeper) -> None:
    """Test that a setting the driver refuses raises, and a good one applies."""
    with pytest.raises(SensorMisconfigured, match="resolution"):
        light.keeper.check({"resolution": "ultra"})

    light.plug_in(lux=100.0)
    await light.keeper.apply({"resolution": "low"})
    reading = await light.keeper.sample()

    assert reading is not None
    assert reading.values["illuminance_lux"] == pytest.approx(100.0, abs=4.0)
