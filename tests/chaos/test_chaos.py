"""Chaos: link cuts, a blackhole, hub restarts, a SIGKILL and throttling.

The agent runs as a real process with all three simulated sensors sampling
every 0.1 s, through a proxy that breaks the link on command, against a dev
hub that restarts and throttles. At the end:

* every sequence number of every module reached the hub at least once, and
  any repeat carried the same message id;
* every module's reported acknowledgements match its desired properties;
* the applied desired versions (read from the agent's state files) never
  repeat, a patch is only ever applied at the previous version + 1, and the
  last one applied is the twin's desired version.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from devhub.hub import DevHub
from tests.chaos.proxy import ChaosProxy
from tests.integration.conftest import (
    DEVICE_ID,
    SENSOR_MODULES,
    AgentProcess,
    eventually,
    write_agent_config,
)

READINGS_PER_MODULE = 1000
HUB_MQTT_PORT = 18883
SDK_MQTT_PORT = 8883
KEEP_ALIVE_S = 3
BLACKHOLE_S = 3 * KEEP_ALIVE_S
DESIRED_CHANGES: dict[str, list[dict[str, Any]]] = {
    "moisture": [{"dry_threshold_pct": 25}, {"location": "bed 1"}, {"enabled": True}],
    "light": [
        {"location": "sill"},
        {"lux_change_to_report": 0},
        {"location": "window"},
    ],
    "temperature": [{"unit": "F"}, {"offset_c": -0.3}, {"unit": "C"}],
}


def chaos_host() -> str:
    return f"127.{200 + os.getpid() % 50}.7.1"


def received(hub: DevHub, module_id: str) -> dict[int, set[str]]:
    """Map each sequence number the hub stored to the message ids carrying it."""
    carriers: dict[int, set[str]] = defaultdict(set)
    for message in hub.telemetry(DEVICE_ID, module_id, limit=100_000):
        body = json.loads(message["body"])
        for reading in body["readings"]:
            carriers[reading["seq"]].add(message["message_id"])
    return carriers


def highest_seq(hub: DevHub, module_id: str) -> int:
    return max(received(hub, module_id), default=0)


class Chaos:
    """The hub, the proxy in front of it, and the agent behind it."""

    def __init__(self, tmp_path: Path) -> None:
        host = chaos_host()
        self.hub = DevHub(tmp_path / "hub", host=host, mqtt_port=HUB_MQTT_PORT)
        self.proxy = ChaosProxy((host, SDK_MQTT_PORT), (host, HUB_MQTT_PORT))
        self.config = tmp_path / "pitwin.toml"
        self.state_dir = tmp_path / "agent-state"
        self.agents: list[AgentProcess] = []
        self.version = 1

    async def start(self) -> None:
        await self.hub.start()
        await self.proxy.start()
        keys = {
            m: self.hub.ensure_module(DEVICE_ID, m).primary_key for m in SENSOR_MODULES
        }
        write_agent_config(
            self.config,
            self.hub,
            keys=keys,
            properties={m: {"sample_interval_s": 0.1} for m in SENSOR_MODULES},
            sensors={m: {"speed": 60} for m in SENSOR_MODULES},
        )
        text = self.config.read_text()
        text = text.replace("[link]\n", f"[link]\nkeep_alive_s = {KEEP_ALIVE_S}\n")
        text = text.replace("call_timeout_s = 10", "call_timeout_s = 4")
        text = text.replace("max_latency_s = 0.5", "max_latency_s = 2")
        self.config.write_text(text)
        await self.start_agent()

    async def start_agent(self) -> AgentProcess:
        agent = AgentProcess("--verbose", "run", "--config", str(self.config))
        await agent.start()
        self.agents.append(agent)
        return agent

    async def stop(self) -> None:
        for agent in self.agents:
            await agent.stop()
        await self.proxy.stop()
        await self.hub.stop()

    def change_desired(self, module_id: str, members: dict[str, Any]) -> None:
        self.hub.update_module_twin(
            DEVICE_ID, module_id, {"properties": {"desired": members}}
        )

    async def restart_hub(self) -> None:
        await self.hub.stop()
        await asyncio.sleep(1.5)
        await self.hub.start()

    async def readings_reach(self, count: int) -> None:
        for module_id in SENSOR_MODULES:
            try:
                await eventually(
                    lambda m=module_id: highest_seq(self.hub, m) >= count,
                    what=f"{module_id} readings up to seq {count} at the hub",
                    timeout_s=120,
                )
            except pytest.fail.Exception as failed:
                pytest.fail(f"{failed}; agent log tail:\n{self.log_tail()}")

    def seen(self, text: str) -> bool:
        return any(text in line for agent in self.agents for line in agent.lines)

    def log_tail(self) -> str:
        return "\n".join(self.agents[-1].lines[-60:])


@pytest.fixture
async def chaos(tmp_path: Path) -> Any:
    scene = Chaos(tmp_path)
    await scene.start()
    yield scene
    await scene.stop()


async def test_nothing_lost_and_twins_converge_through_chaos(chaos: Chaos) -> None:
    """Test delivery and twin sync through every fault the field throws."""
    changes = {m: iter(c) for m, c in DESIRED_CHANGES.items()}
    await chaos.readings_reach(50)

    chaos.proxy.reset_all()
    chaos.change_desired("light", next(changes["light"]))
    await chaos.readings_reach(150)

    chaos.proxy.blackholed = True
    chaos.change_desired("moisture", next(changes["moisture"]))
    await asyncio.sleep(BLACKHOLE_S)
    chaos.proxy.blackholed = False
    await chaos.readings_reach(250)

    await chaos.hub.stop()
    chaos.change_desired("temperature", next(changes["temperature"]))
    chaos.change_desired("light", next(changes["light"]))
    await asyncio.sleep(1.5)
    await chaos.hub.start()
    await chaos.readings_reach(400)

    chaos.hub.faults.twin_throttle_share = 0.5
    chaos.hub.faults.telemetry_throttle_share = 0.05
    chaos.change_desired("moisture", next(changes["moisture"]))
    chaos.change_desired("temperature", next(changes["temperature"]))
    for spot in range(20):
        # Twin requests are few; make some until one has been throttled.
        if chaos.seen("status 429"):
            break
        chaos.change_desired("light", {"location": f"spot {spot}"})
        await asyncio.sleep(0.5)
    await chaos.readings_reach(550)
    chaos.hub.faults.twin_throttle_share = 0.0
    chaos.hub.faults.telemetry_throttle_share = 0.0

    chaos.agents[-1].kill()
    chaos.change_desired("light", next(changes["light"]))
    await asyncio.sleep(1)
    await chaos.start_agent()
    await chaos.readings_reach(650)

    for _ in range(5):
        chaos.proxy.reset_all()
        await asyncio.sleep(1)
    await chaos.restart_hub()
    chaos.change_desired("moisture", next(changes["moisture"]))
    chaos.change_desired("temperature", next(changes["temperature"]))
    await chaos.readings_reach(READINGS_PER_MODULE)

    for module_id in SENSOR_MODULES:
        await eventually(
            lambda m=module_id: twin_converged(chaos.hub, m),
            what=f"{module_id} reported acks match desired",
            timeout_s=60,
        )
    await chaos.agents[-1].stop(signal.SIGTERM)

    lines = [line for agent in chaos.agents for line in agent.lines]
    assert sum("link down module=" in line for line in lines) >= 6
    assert chaos.seen("status 429"), "no throttling was seen"
    resumed = [line for line in chaos.agents[1].lines if "module started" in line]
    assert all("applied_version=1" not in line for line in resumed)
    for module_id in SENSOR_MODULES:
        carriers = received(chaos.hub, module_id)
        top = max(carriers)
        missing = sorted(set(range(1, top + 1)) - set(carriers))
        assert missing == [], f"{module_id} lost readings {missing[:20]}"
        assert top >= READINGS_PER_MODULE
        repeats = {s: ids for s, ids in carriers.items() if len(ids) > 1}
        assert repeats == {}, f"{module_id} repeats under new message ids"
        assert_history_sound(chaos, module_id)


def twin_converged(hub: DevHub, module_id: str) -> bool:
    twin = hub.get_module_twin(DEVICE_ID, module_id)["properties"]
    desired, reported = twin["desired"], twin["reported"]
    for name, value in desired.items():
        if name.startswith("$"):
            continue
        ack = reported.get(name)
        if not isinstance(ack, dict) or ack.get("ac") != 200:
            return False
        if ack.get("value") != value or ack.get("av") != desired["$version"]:
            return False
    return True


def assert_history_sound(chaos: Chaos, module_id: str) -> None:
    state = json.loads((chaos.state_dir / f"{module_id}.state.json").read_text())
    history = state["history"]
    versions = [version for version, _ in history]
    desired = chaos.hub.get_module_twin(DEVICE_ID, module_id)["properties"]["desired"]

    assert versions == sorted(set(versions)), f"{module_id} applied twice: {history}"
    for (before, _), (version, source) in itertools.pairwise(history):
        if source == "patch":
            assert version == before + 1, f"{module_id} skipped a version: {history}"
    assert state["applied_version"] == versions[-1] == desired["$version"]
