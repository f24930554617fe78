"""Direct methods from the service side to each agent module and back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from devhub.errors import DeviceNotOnline
from devhub.hub import DevHub
from tests.integration.conftest import DEVICE_ID, SENSOR_MODULES, write_agent_config


async def running_agent(
    start_agent: Any, tmp_path: Path, hub: DevHub, keys: dict[str, str]
) -> Any:
    agent = await start_agent(
        write_agent_config(tmp_path / "pitwin.toml", hub, keys=keys)
    )
    for module_id in keys:
        await agent.wait_for(f"(twin in sync|desired applied) module={module_id} ")
    return agent


async def test_each_module_answers_get_config(
    hub: DevHub, module_keys: dict[str, str], start_agent: Any, tmp_path: Path
) -> None:
    """Test that get_config returns each module's effective config and version."""
    await running_agent(start_agent, tmp_path, hub, module_keys)

    for module_id in SENSOR_MODULES:
        answer = await hub.invoke_method(DEVICE_ID, module_id, "get_config", None)

        assert answer["status"] == 200
        assert answer["payload"]["module"] == module_id
        assert answer["payload"]["applied_version"] == 1
        assert answer["payload"]["effective"]["sample_interval_s"] == 60.0


async def test_read_now_returns_a_fresh_reading(
    hub: DevHub, module_keys: dict[str, str], start_agent: Any, tmp_path: Path
) -> None:
    """Test that read_now answers with the sensor's quantities."""
    await running_agent(
        start_agent, tmp_path, hub, {"temperature": module_keys["temperature"]}
    )

    answer = await hub.invoke_method(DEVICE_ID, "temperature", "read_now", {})

    assert answer["status"] == 200
    assert set(answer["payload"]["values"]) == {"temperature_c", "humidity_pct"}


async def test_restart_sensor_reopens_it(
    hub: DevHub, module_keys: dict[str, str], start_agent: Any, tmp_path: Path
) -> None:
    """Test that restart_sensor closes and reopens the sensor."""
    agent = await running_agent(
        start_agent, tmp_path, hub, {"light": module_keys["light"]}
    )

    answer = await hub.invoke_method(DEVICE_ID, "light", "restart_sensor", None)

    assert answer == {"status": 200, "payload": {"sensor": "ok"}}
    await agent.wait_for("sensor restarted module=light")


async def test_unknown_method_gets_404_not_a_hang(
    hub: DevHub, module_keys: dict[str, str], start_agent: Any, tmp_path: Path
) -> None:
    """Test that an unknown method is answered 404 with the known names."""
    await running_agent(start_agent, tmp_path, hub, {"light": module_keys["light"]})

    answer = await hub.invoke_method(DEVICE_ID, "light", "reboot", None, timeout_s=5)

    assert answer == {
        "status": 404,
        "payload": {
            "error": "unknown method 'reboot'; methods are get_config, read_now, "
            "restart_sensor"
        },
    }


async def test_method_to_module_not_connected_is_404(hub: DevHub) -> None:
    """Test that calling a module with no agent connected is refused at once."""
    with pytest.raises(DeviceNotOnline):
        await hub.invoke_method(DEVICE_ID, "light", "get_config", None)


async def pitwin(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_pitwin_method_round_trip_to_each_module(
    hub: DevHub, module_keys: dict[str, str], start_agent: Any, tmp_path: Path
) -> None:
    """Test that `pitwin method` reaches each agent module and prints its answer."""
    await running_agent(start_agent, tmp_path, hub, module_keys)

    for module_id in SENSOR_MODULES:
        code, out, _ = await pitwin(
            "method",
            f"{DEVICE_ID}/{module_id}",
            "read_now",
            "--hub-dir",
            str(tmp_path / "hub"),
        )

        assert code == 0
        answer = json.loads(out)
        assert answer["status"] == 200
        assert answer["payload"]["values"]


async def test_pitwin_method_times_out_on_a_frozen_agent(
    hub: DevHub, module_keys: dict[str, str], start_agent: Any, tmp_path: Path
) -> None:
    """Test that a connected module that never answers gives 504, not a hang."""
    agent = await running_agent(
        start_agent, tmp_path, hub, {"light": module_keys["light"]}
    )
    os.kill(agent.pid, signal.SIGSTOP)
    try:
        code, _, err = await pitwin(
            "method",
            f"{DEVICE_ID}/light",
            "get_config",
            "--timeout",
            "5",
            "--hub-dir",
            str(tmp_path / "hub"),
        )
    finally:
        os.kill(agent.pid, signal.SIGCONT)

    assert code == 1
    assert err.startswith("pitwin: error: ")
    assert "504" in err


async def test_pitwin_method_to_offline_module_is_404(
    hub: DevHub, tmp_path: Path
) -> None:
    """Test that calling a module with no agent connected fails at once with 404."""
    code, _, err = await pitwin(
        "method", f"{DEVICE_ID}/light", "get_config", "--hub-dir", str(tmp_path / "hub")
    )

    assert code == 1
    assert "404" in err
