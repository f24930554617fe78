"""Sensor faults degrade their module only; twins and other modules go on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig, LinkConfig, ModuleConfig, OutboxConfig
from agent.supervisor import Agent
from devhub.hub import DevHub
from sensors.base import Sensor, SystemClock
from sensors.bh1750 import create_bh1750
from sensors.dht import create_dht22
from sensors.registry import create_sensor
from tests.integration.conftest import DEVICE_ID, eventually
from tests.sensors.fake_dht import HANG, FakeDht, FakeDhtReader
from tests.sensors.fake_smbus import FakeBH1750, FakeSMBus
from tests.sensors.fakes import FakeClock


def logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


async def test_hung_dht_read_leaves_twin_and_other_modules_working(
    hub: DevHub,
    module_keys: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Test that a DHT22 stuck mid-read does not stall twins or other modules."""
    caplog.set_level(logging.INFO)
    stuck = FakeDht(FakeClock(), [HANG])

    def build(driver: str, options: Mapping[str, Any]) -> Sensor:
        if driver == "dht22":
            return create_dht22(
                options, clock=SystemClock(), dht_reader=FakeDhtReader(stuck)
            )
        return create_sensor(driver, options)

    config = AgentConfig(
        device_id=DEVICE_ID,
        hub_hostname=hub.hostname,
        gateway_host=hub.host,
        ca_pem=hub.ca_pem,
        state_dir=tmp_path / "state",
        modules={
            "temperature": ModuleConfig(
                "temperature",
                "temperature",
                "dht22",
                {"pin": 4},
                {"sample_interval_s": 1.0},
                module_keys["temperature"],
            ),
            "light": ModuleConfig(
                "light",
                "light",
                "simulated-light",
                {},
                {"sample_interval_s": 1.0},
                module_keys["light"],
            ),
        },
        link=LinkConfig(backoff_base_s=0.2, backoff_cap_s=1.0),
        outbox=OutboxConfig(max_latency_s=0.5),
    )
    agent = asyncio.create_task(Agent(config, sensor_builder=build).run())
    try:
        await eventually(stuck.hanging.is_set, what="the DHT read hangs")
        await eventually(
            lambda: (
                logged(caplog, "twin in sync module=temperature")
                or logged(caplog, "desired applied module=temperature")
            ),
            what="temperature twin synced",
        )

        hub.update_module_twin(
            DEVICE_ID, "temperature", {"properties": {"desired": {"unit": "F"}}}
        )

        await eventually(
            lambda: logged(
                caplog, "desired applied module=temperature desired_version=2"
            ),
            what="desired change applied while the read hangs",
        )
        await eventually(
            lambda: len(hub.telemetry(DEVICE_ID, "light", limit=10)) >= 3,
            what="light keeps sending",
        )
        await eventually(
            lambda: (
                hub.get_module_twin(DEVICE_ID, "temperature")["properties"]["reported"]
                .get("sensor", {})
                .get("state")
                == "degraded"
            ),
            what="temperature reports itself degraded",
        )
        answer = await hub.invoke_method(DEVICE_ID, "temperature", "get_config", None)
        assert answer["status"] == 200
        assert answer["payload"]["effective"]["unit"] == "F"
    finally:
        agent.cancel()
        with pytest.raises(asyncio.CancelledError):
            await agent

    assert stuck.exits == 1


def sensor_state(hub: DevHub, module_id: str) -> str | None:
    reported = hub.get_module_twin(DEVICE_ID, module_id)["properties"]["reported"]
    state: str | None = reported.get("sensor", {}).get("state")
    return state


async def test_missing_sensor_then_plugged_in_and_settings_from_the_twin(
    hub: DevHub,
    module_keys: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Test degraded-to-healthy without restart, and desired driver settings."""
    caplog.set_level(logging.INFO)
    clock, bus = FakeClock(), FakeSMBus()

    def build(driver: str, options: Mapping[str, Any]) -> Sensor:
        if driver == "bh1750":
            return create_bh1750(options, clock=clock, bus=bus)
        return create_sensor(driver, options)

    config = AgentConfig(
        device_id=DEVICE_ID,
        hub_hostname=hub.hostname,
        gateway_host=hub.host,
        ca_pem=hub.ca_pem,
        state_dir=tmp_path / "state",
        modules={
            "light": ModuleConfig(
                "light",
                "light",
                "bh1750",
                {},
                {"sample_interval_s": 0.2},
                module_keys["light"],
            ),
            "moisture": ModuleConfig(
                "moisture",
                "moisture",
                "simulated-moisture",
                {},
                {},
                module_keys["moisture"],
            ),
        },
        link=LinkConfig(backoff_base_s=0.2, backoff_cap_s=1.0),
        outbox=OutboxConfig(max_latency_s=0.5),
    )
    agent = asyncio.create_task(Agent(config, sensor_builder=build).run())
    try:
        await eventually(
            lambda: sensor_state(hub, "light") == "degraded", what="light degraded"
        )
        bus.chips[0x23] = FakeBH1750(clock, lux=321.0)
        await eventually(lambda: sensor_state(hub, "light") == "ok", what="light ok")
        assert logged(caplog, "sensor recovered module=light")

        hub.update_module_twin(
            DEVICE_ID, "light", {"properties": {"desired": {"resolution": "low"}}}
        )
        hub.update_module_twin(
            DEVICE_ID,
            "moisture",
            {"properties": {"desired": {"samples_per_reading": 5}}},
        )

        await eventually(
            lambda: logged(
                caplog, "sensor settings applied module=light settings=resolution=low"
            ),
            what="resolution reaches the BH1750",
        )
        ack = await eventually(
            lambda: hub.get_module_twin(DEVICE_ID, "moisture")["properties"][
                "reported"
            ].get("samples_per_reading"),
            what="moisture acks samples_per_reading",
        )
        assert ack["ac"] == 400
        assert ack["ad"].startswith(
            "the sensor refuses it: unknown option 'samples' for sensor driver "
            "'simulated-moisture'"
        )
    finally:
        agent.cancel()
        with pytest.raises(asyncio.CancelledError):
            await agent
