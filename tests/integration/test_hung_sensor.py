"""A sensor whose read hangs degrades its module only; its twin still answers."""

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
from sensors.dht import create_dht22
from sensors.registry import create_sensor
from tests.integration.conftest import DEVICE_ID, eventually
from tests.sensors.fake_dht import HANG, FakeDht, FakeDhtReader
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
