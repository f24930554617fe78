"""The demo as a new user runs it: one command, then a change from a second one."""

from __future__ import annotations

import asyncio
import shlex
import signal
import sys
from pathlib import Path

from tests.integration.conftest import AgentProcess


async def test_demo_shows_readings_and_applies_a_pushed_change(
    tmp_path: Path, hub_host: str
) -> None:
    """Test that `pitwin demo` sends readings and applies its printed command."""
    hub_dir = tmp_path / "hub"
    demo = AgentProcess("demo", "--hub-dir", str(hub_dir), "--host", hub_host)
    await demo.start()
    try:
        for module_id in ("moisture", "light", "temperature"):
            await demo.wait_for(f"reading module={module_id} seq=1 ")
        printed = (await demo.wait_for(r"^    pitwin twin set "))[0]

        command = shlex.split(printed.strip())
        assert command[:3] == ["pitwin", "twin", "set"]
        assert command[-2:] == ["--hub-dir", str(hub_dir)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent.cli",
            *command[1:],
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()

        assert proc.returncode == 0
        assert out.decode().strip() == (
            "desired properties of pi-demo/light now at $version 2"
        )
        line = (await demo.wait_for("desired applied module=light desired_version=2"))[
            0
        ]
        assert "changed=lux_change_to_report,sample_interval_s " in line
        assert "source=patch" in line
    finally:
        status = await demo.stop(signal.SIGINT)

    assert status == 0
    assert demo.lines[-1] == "demo stopped"
