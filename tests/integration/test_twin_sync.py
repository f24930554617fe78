"""End to end: the agent process, the real SDK and the dev hub over TLS."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import sys
from pathlib import Path
from typing import Any

import pytest

from devhub.hub import DevHub
from tests.integration.conftest import (
    DEVICE_ID,
    OFFICE_TRACE,
    SENSOR_MODULES,
    eventually,
    write_agent_config,
)


def reported(hub: DevHub, module_id: str) -> dict[str, Any]:
    twin = hub.get_module_twin(DEVICE_ID, module_id)
    result: dict[str, Any] = twin["properties"]["reported"]
    return result


def desired_version(hub: DevHub, module_id: str) -> int:
    twin = hub.get_module_twin(DEVICE_ID, module_id)
    version: int = twin["properties"]["desired"]["$version"]
    return version


def ack_of(hub: DevHub, module_id: str, name: str) -> dict[str, Any] | None:
    value = reported(hub, module_id).get(name)
    if not isinstance(value, dict):
        return None
    return {k: v for k, v in value.items() if not k.startswith("$")}


async def pitwin_cli(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def started(
    start_agent: Any, tmp_path: Path, hub: DevHub, keys: Any, **kw: Any
) -> Any:
    config = write_agent_config(tmp_path / "pitwin.toml", hub, keys=keys, **kw)
    agent = await start_agent(config)
    for module_id in keys:
        await agent.wait_for(f"connected module={module_id}")
    return agent


async def test_cli_desired_change_applies_to_that_module_only(
    hub: DevHub, module_keys: dict[str, str], start_agent: Any, tmp_path: Path
) -> None:
    """Test that `pitwin twin set` reaches one module, which acks 200 at the version."""
    agent = await started(start_agent, tmp_path, hub, module_keys)
    for module_id in SENSOR_MODULES:
        await agent.wait_for(f"(twin in sync|desired applied) module={module_id} ")

    out = await pitwin_cli(
        "twin",
        "set",
        f"{DEVICE_ID}/light",
        "sample_interval_s=7",
        "--hub-dir",
        str(tmp_path / "hub"),
    )

    version = desired_version(hub, "light")
    assert out.strip() == (
        f"desired properties of {DEVICE_ID}/light now at $version {version}"
    )
    await agent.wait_for(f"desired applied module=light desired_version={version} ")
    ack = await eventually(
        lambda: (
            ack_of(hub, "light", "sample_interval_s")
            if (ack_of(hub, "light", "sample_interval_s") or {}).get("ac") == 200
            else None
        ),
        what="light acks sample_interval_s",
    )
    assert ack == {"value": 7.0, "ac": 200, "av": version, "ad": "applied"}
    assert (
        agent.matching("desired applied module=(moisture|temperature) .*source=patch")
        == []
    )
    assert desired_version(hub, "moisture") == 1


async def test_offline_changes_apply_newest_once_and_removed_key_resets(
    hub: DevHub,
    module_keys: dict[str, str],
    start_agent: Any,
    tmp_path: Path,
    hub_host: str,
) -> None:
    """Test that two changes made while cut off give one apply of the newest."""
    agent = await started(start_agent, tmp_path, hub, {"light": module_keys["light"]})
    await agent.wait_for("(twin in sync|desired applied) module=light ")
    hub.update_module_twin(
        DEVICE_ID, "light", {"properties": {"desired": {"lux_change_to_report": 3}}}
    )
    await agent.wait_for("desired applied module=light desired_version=2 source=patch")

    await hub.stop()
    await agent.wait_for("link down module=light")
    offline = DevHub(tmp_path / "hub", host=hub_host)
    offline.update_module_twin(
        DEVICE_ID, "light", {"properties": {"desired": {"sample_interval_s": 8}}}
    )
    offline.update_module_twin(
        DEVICE_ID, "light", {"properties": {"desired": {"lux_change_to_report": None}}}
    )
    await hub.start()

    await agent.wait_for("desired applied module=light desired_version=4 source=resync")
    ack = await eventually(
        lambda: (
            (a := ack_of(hub, "light", "lux_change_to_report")) and a["av"] == 4 and a
        ),
        what="light acks the removed key at version 4",
    )
    assert ack == {"value": 0.0, "ac": 200, "av": 4, "ad": "removed; back to default"}
    assert ack_of(hub, "light", "sample_interval_s") == {
        "value": 8.0,
        "ac": 200,
        "av": 4,
        "ad": "applied",
    }
    applied = agent.matching("desired applied module=light")
    assert [line.split("desired_version=")[1].split()[0] for line in applied] == [
        "1",
        "2",
        "4",
    ]


async def test_invalid_values_rejected_while_valid_keys_apply(
    hub: DevHub, module_keys: dict[str, str], start_agent: Any, tmp_path: Path
) -> None:
    """Test that bad values are acked 400 with reasons and the rest applies."""
    agent = await started(
        start_agent, tmp_path, hub, {"moisture": module_keys["moisture"]}
    )
    await agent.wait_for("(twin in sync|desired applied) module=moisture ")

    hub.update_module_twin(
        DEVICE_ID,
        "moisture",
        {
            "properties": {
                "desired": {
                    "sample_interval_s": "fast",
                    "dry_threshold_pct": 250,
                    "colour": {"deep": {"er": 1}},
                    "location": None,
                    "enabled": False,
                }
            }
        },
    )

    await agent.wait_for("desired applied module=moisture desired_version=2")
    acks = await eventually(
        lambda: (
            {
                n: ack_of(hub, "moisture", n)
                for n in (
                    "sample_interval_s",
                    "dry_threshold_pct",
                    "colour",
                    "location",
                    "enabled",
                )
            }
            if (ack_of(hub, "moisture", "enabled") or {}).get("av") == 2
            else None
        ),
        what="moisture acks version 2",
    )
    assert acks == {
        "sample_interval_s": {
            "value": 60.0,
            "ac": 400,
            "av": 2,
            "ad": 'expected a number, got a string "fast"',
        },
        "dry_threshold_pct": {
            "value": 30.0,
            "ac": 400,
            "av": 2,
            "ad": "250 is out of range; use a value from 0 to 100",
        },
        "colour": {
            "ac": 400,
            "av": 2,
            "ad": "unknown property 'colour'; writable properties are "
            "calibration_dry_raw, calibration_wet_raw, dry_threshold_pct, "
            "enabled, location, sample_interval_s, samples_per_reading",
        },
        "location": {
            "ac": 400,
            "av": 2,
            "ad": "'location' has no default to go back to; send a value instead",
        },
        "enabled": {"value": False, "ac": 200, "av": 2, "ad": "applied"},
    }
    hub.update_module_twin(
        DEVICE_ID, "moisture", {"properties": {"desired": {"sample_interval_s": 5}}}
    )
    await agent.wait_for(
        "desired applied module=moisture desired_version=3 source=patch"
    )
    assert agent.running


async def test_restarted_agent_applies_nothing_then_a_change_once(
    hub: DevHub, module_keys: dict[str, str], start_agent: Any, tmp_path: Path
) -> None:
    """Test that a new process resumes at the applied version."""
    keys = {"temperature": module_keys["temperature"]}
    first = await started(start_agent, tmp_path, hub, keys)
    await first.wait_for("(twin in sync|desired applied) module=temperature ")
    hub.update_module_twin(
        DEVICE_ID, "temperature", {"properties": {"desired": {"unit": "F"}}}
    )
    await first.wait_for("desired applied module=temperature desired_version=2")
    await first.stop()

    second = await started(start_agent, tmp_path, hub, keys)
    await second.wait_for("twin in sync module=temperature desired_version=2")
    await second.stop()
    hub.update_module_twin(
        DEVICE_ID, "temperature", {"properties": {"desired": {"offset_c": -0.5}}}
    )
    third = await started(start_agent, tmp_path, hub, keys)
    await third.wait_for("desired applied module=temperature desired_version=3")

    assert second.matching("desired applied") == []
    assert len(third.matching("desired applied")) == 1
    assert "changed=offset_c " in third.matching("desired applied")[0]


async def test_telemetry_arrives_under_each_module_identity(
    hub: DevHub, module_keys: dict[str, str], start_agent: Any, tmp_path: Path
) -> None:
    """Test that each module's readings are stored under its own identity."""
    await started(
        start_agent,
        tmp_path,
        hub,
        module_keys,
        properties={m: {"sample_interval_s": 1} for m in SENSOR_MODULES},
    )

    for module_id in SENSOR_MODULES:
        messages = await eventually(
            lambda m=module_id: hub.telemetry(DEVICE_ID, m, limit=5),
            what=f"telemetry from {module_id}",
        )
        body = json.loads(messages[-1]["body"])
        assert body["module"] == module_id
        assert body["readings"][0]["seq"] == body["first_seq"]
        assert messages[-1]["module_id"] == module_id
        assert messages[-1]["content_type"] == "application/json"
        assert messages[-1]["content_encoding"] == "utf-8"


async def test_wrong_key_logged_once_and_other_modules_keep_running(
    hub: DevHub, module_keys: dict[str, str], start_agent: Any, tmp_path: Path
) -> None:
    """Test that a refused module logs one clear line and backs off alone."""
    wrong = base64.b64encode(secrets.token_bytes(32)).decode()
    keys = {**module_keys, "moisture": wrong}
    agent = await started(
        start_agent,
        tmp_path,
        hub,
        {"light": keys["light"]},
    )
    await agent.stop()
    config = write_agent_config(
        tmp_path / "pitwin.toml",
        hub,
        keys=keys,
        properties={"light": {"sample_interval_s": 1}},
    )
    agent = await start_agent(config, verbose=True)

    await agent.wait_for("connected module=light")
    await agent.wait_for("still down module=moisture", count=2)
    before = len(hub.telemetry(DEVICE_ID, "light", limit=1000))
    await eventually(
        lambda: len(hub.telemetry(DEVICE_ID, "light", limit=1000)) > before + 2,
        what="light keeps sending",
    )
    refused = agent.matching("module=moisture")
    errors = [line for line in refused if line.startswith("ERROR")]
    assert errors == [
        "ERROR agent.runner: connection refused module=moisture cause=connect: "
        "the hub refused the credentials; check the module's key in "
        "[modules.moisture] and that the identity exists in the hub"
    ]
    assert agent.running


@pytest.mark.skipif(
    not OFFICE_TRACE.exists(), reason="needs ../shared/data beside the repository"
)
async def test_trace_replay_sends_recorded_values(
    hub: DevHub, module_keys: dict[str, str], start_agent: Any, tmp_path: Path
) -> None:
    """Test that a trace-backed module sends the office trace's first row."""
    await started(
        start_agent,
        tmp_path,
        hub,
        {"temperature": module_keys["temperature"]},
        drivers={"temperature": "trace"},
        sensors={
            "temperature": {
                "path": str(OFFICE_TRACE),
                "quantities": ["temperature_c", "humidity_pct"],
            }
        },
    )

    messages = await eventually(
        lambda: hub.telemetry(DEVICE_ID, "temperature", limit=1),
        what="a reading from the trace",
    )
    first = json.loads(messages[0]["body"])["readings"][0]
    assert (first["seq"], first["temperature_c"], first["humidity_pct"]) == (
        1,
        23.18,
        27.272,
    )


async def test_patch_skipping_a_version_triggers_full_resync(
    hub: DevHub, module_keys: dict[str, str], start_agent: Any, tmp_path: Path
) -> None:
    """Test that a lost notification is noticed by version and healed by a GET."""
    agent = await started(start_agent, tmp_path, hub, {"light": module_keys["light"]})
    await agent.wait_for("(twin in sync|desired applied) module=light ")
    hub.faults.drop_desired_notifications = 1

    hub.update_module_twin(
        DEVICE_ID, "light", {"properties": {"desired": {"sample_interval_s": 9}}}
    )
    hub.update_module_twin(
        DEVICE_ID, "light", {"properties": {"desired": {"lux_change_to_report": 4}}}
    )

    await agent.wait_for(
        "desired patch out of sequence, resyncing module=light desired_version=3 "
        "applied_version=1"
    )
    line = (await agent.wait_for("desired applied module=light desired_version=3"))[0]
    assert "source=resync" in line
    assert "changed=lux_change_to_report,sample_interval_s " in line
    assert agent.matching("desired applied module=light desired_version=2") == []


async def test_repeated_patch_is_ignored(
    hub: DevHub, module_keys: dict[str, str], start_agent: Any, tmp_path: Path
) -> None:
    """Test that a notification delivered twice is applied once."""
    config = write_agent_config(
        tmp_path / "pitwin.toml", hub, keys={"light": module_keys["light"]}
    )
    agent = await start_agent(config, verbose=True)
    await agent.wait_for("(twin in sync|desired applied) module=light ")
    hub.faults.repeat_desired_notifications = 1

    hub.update_module_twin(
        DEVICE_ID, "light", {"properties": {"desired": {"sample_interval_s": 9}}}
    )

    await agent.wait_for("desired patch already applied module=light desired_version=2")
    assert len(agent.matching("desired applied module=light desired_version=2")) == 1


async def test_recreated_twin_gets_a_full_report(
    hub: DevHub, module_keys: dict[str, str], start_agent: Any, tmp_path: Path
) -> None:
    """Test that after a twin is recreated every reported property is sent again."""
    agent = await started(start_agent, tmp_path, hub, {"light": module_keys["light"]})
    await agent.wait_for("(twin in sync|desired applied) module=light ")
    hub.update_module_twin(
        DEVICE_ID, "light", {"properties": {"desired": {"location": "bench"}}}
    )
    await agent.wait_for("desired applied module=light desired_version=2")
    identity = hub.get_identity(DEVICE_ID, "light")

    hub.delete_identity(DEVICE_ID, "light")
    hub.core.add_identity(
        DEVICE_ID,
        "light",
        primary_key=identity.primary_key,
        secondary_key=identity.secondary_key,
    )

    await agent.wait_for("twin was recreated module=light")
    names = ("sample_interval_s", "enabled", "lux_change_to_report", "location")
    acks = await eventually(
        lambda: (
            all(ack_of(hub, "light", n) for n in names)
            and {n: ack_of(hub, "light", n) for n in names}
        ),
        what="every ack reported to the recreated twin",
    )
    assert acks["location"] == {"value": "bench", "ac": 200, "av": 2, "ad": "applied"}
    assert acks["enabled"] == {
        "value": True,
        "ac": 203,
        "av": 0,
        "ad": "from config or default",
    }
    assert reported(hub, "light")["sensor"]["state"] == "ok"


async def test_removed_unknown_key_loses_its_ack(
    hub: DevHub, module_keys: dict[str, str], start_agent: Any, tmp_path: Path
) -> None:
    """Test that deleting an unknown desired key deletes its 400 ack."""
    agent = await started(start_agent, tmp_path, hub, {"light": module_keys["light"]})
    await agent.wait_for("(twin in sync|desired applied) module=light ")
    hub.update_module_twin(
        DEVICE_ID, "light", {"properties": {"desired": {"colour": 1}}}
    )
    await eventually(lambda: ack_of(hub, "light", "colour"), what="colour acked 400")

    hub.update_module_twin(
        DEVICE_ID, "light", {"properties": {"desired": {"colour": None}}}
    )

    await agent.wait_for("desired applied module=light desired_version=3")
    await eventually(
        lambda: "colour" not in reported(hub, "light"), what="colour ack deleted"
    )


async def test_twin_recreated_offline_at_the_same_version_is_applied(
    hub: DevHub,
    module_keys: dict[str, str],
    start_agent: Any,
    tmp_path: Path,
    hub_host: str,
) -> None:
    """Test that a new twin reaching the applied version is not taken as in sync."""
    agent = await started(start_agent, tmp_path, hub, {"light": module_keys["light"]})
    hub.update_module_twin(
        DEVICE_ID, "light", {"properties": {"desired": {"sample_interval_s": 30}}}
    )
    await agent.wait_for("desired applied module=light desired_version=2")
    identity = hub.get_identity(DEVICE_ID, "light")

    await hub.stop()
    offline = DevHub(tmp_path / "hub", host=hub_host)
    offline.delete_identity(DEVICE_ID, "light")
    offline.core.add_identity(
        DEVICE_ID,
        "light",
        primary_key=identity.primary_key,
        secondary_key=identity.secondary_key,
    )
    offline.update_module_twin(
        DEVICE_ID, "light", {"properties": {"desired": {"sample_interval_s": 10}}}
    )
    offline.close()
    await hub.start()

    await agent.wait_for("twin was recreated module=light desired_version=2")
    ack = await eventually(
        lambda: (
            (a := ack_of(hub, "light", "sample_interval_s"))
            and a.get("value") == 10.0
            and a
        ),
        what="the new twin gets the ack of the new value",
    )
    assert ack == {"value": 10.0, "ac": 200, "av": 2, "ad": "applied"}


async def test_refused_value_removed_offline_gets_its_400_retired(
    hub: DevHub,
    module_keys: dict[str, str],
    start_agent: Any,
    tmp_path: Path,
    hub_host: str,
) -> None:
    """Test that a 400 ack goes once its desired value was removed."""
    agent = await started(start_agent, tmp_path, hub, {"light": module_keys["light"]})
    await agent.wait_for("(twin in sync|desired applied) module=light ")
    hub.update_module_twin(
        DEVICE_ID, "light", {"properties": {"desired": {"sample_interval_s": "fast"}}}
    )
    await eventually(
        lambda: (ack_of(hub, "light", "sample_interval_s") or {}).get("ac") == 400,
        what="the refusal is acked",
    )

    await hub.stop()
    offline = DevHub(tmp_path / "hub", host=hub_host)
    offline.update_module_twin(
        DEVICE_ID, "light", {"properties": {"desired": {"sample_interval_s": None}}}
    )
    offline.close()
    await hub.start()

    ack = await eventually(
        lambda: (
            (a := ack_of(hub, "light", "sample_interval_s")) and a["ac"] == 200 and a
        ),
        what="the 400 is retired",
    )
    assert ack == {"value": 60.0, "ac": 200, "av": 3, "ad": "removed; back to default"}
