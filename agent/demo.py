"""``pitwin demo``: a dev hub and an agent with simulated sensors, one process."""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

from agent.config import AgentConfig, LinkConfig, ModuleConfig, OutboxConfig
from agent.supervisor import Agent

_LOGGER = logging.getLogger(__name__)

DEMO_DEVICE_ID = "pi-demo"
SECURITY_MODULE_ID = "azureiotsecurity"
DEMO_INTERVAL_S = 5.0
DEMO_LATENCY_S = 0.5
# Module, kind, simulated driver.
_DEMO_MODULES = (
    ("moisture", "simulated-moisture"),
    ("light", "simulated-light"),
    ("temperature", "simulated-temperature"),
)


async def run_demo(*, hub_dir: Path | None, host: str, speed: float) -> None:
    """Start the dev hub, register the demo device, and run the agent.

    Args:
        hub_dir: Dev hub state directory; the default one if ``None``.
        host: Loopback address the dev hub binds.
        speed: Simulated seconds per real second for the sensor models.
    """
    from devhub.hub import DevHub, default_state_dir

    hub_dir = hub_dir or default_state_dir()
    async with DevHub(hub_dir, host=host) as hub:
        keys = {
            module_id: hub.ensure_module(DEMO_DEVICE_ID, module_id).primary_key
            for module_id in (*(m for m, _ in _DEMO_MODULES), SECURITY_MODULE_ID)
        }
        config = AgentConfig(
            device_id=DEMO_DEVICE_ID,
            hub_hostname=hub.hostname,
            gateway_host=hub.host,
            ca_pem=hub.ca_pem,
            state_dir=hub_dir.parent / "demo-agent",
            modules={
                module_id: ModuleConfig(
                    module_id=module_id,
                    kind=module_id,
                    driver=driver,
                    sensor={"speed": speed},
                    properties={"sample_interval_s": DEMO_INTERVAL_S},
                    key=keys[module_id],
                )
                for module_id, driver in _DEMO_MODULES
            },
            link=LinkConfig(backoff_cap_s=30.0),
            # Send each reading at once, so the demo shows them as they come.
            outbox=OutboxConfig(max_latency_s=DEMO_LATENCY_S),
        )
        _print_banner(hub_dir)
        logging.getLogger("agent.readings").setLevel(logging.DEBUG)
        await Agent(config).run()


def _print_banner(hub_dir: Path) -> None:
    hub_option = "" if _is_default(hub_dir) else f" --hub-dir {hub_dir}"
    pitwin = _command_name()
    lines = (
        "",
        f"pitwin demo: device {DEMO_DEVICE_ID!r} with modules "
        f"{', '.join(m for m, _ in _DEMO_MODULES)} "
        f"(+ {SECURITY_MODULE_ID}, registered only)",
        "From another terminal, change a module's desired properties:",
        f"    {pitwin} twin set {DEMO_DEVICE_ID}/light sample_interval_s=2"
        f" lux_change_to_report=50{hub_option}",
        f"    {pitwin} twin show {DEMO_DEVICE_ID}/light{hub_option}",
        "Press Ctrl-C to stop.",
        "",
    )
    print("\n".join(lines), file=sys.stderr, flush=True)


def _command_name() -> str:
    """Return how to call ``pitwin`` from another terminal in this directory.

    ``pitwin`` if it is on the PATH, else the path of the running script,
    relative when it sits below the current directory (``.venv/bin/pitwin``).
    """
    script = Path(sys.argv[0]).resolve()
    on_path = shutil.which("pitwin")
    if script.name != "pitwin" or (on_path and Path(on_path).resolve() == script):
        return "pitwin"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _is_default(hub_dir: Path) -> bool:
    from devhub.hub import default_state_dir

    return hub_dir.resolve() == default_state_dir().resolve()
