"""``pitwin`` commands for the dev hub and its service API.

Only ``pitwin hub`` needs the ``devhub`` extra (aiohttp, cryptography); the
others use the standard-library service client, so they work on a Pi too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

_LOGGER = logging.getLogger(__name__)


def add_commands(commands: Any) -> None:
    """Add ``hub``, ``twin`` and ``telemetry`` to the ``pitwin`` parser.

    Args:
        commands: The parser's sub-parsers (``add_subparsers()`` result).
    """
    hub = commands.add_parser("hub", help="serve the local dev hub")
    _hub_dir_option(hub)
    hub.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    hub.add_argument("--mqtt-port", type=int, default=8883)
    hub.add_argument("--service-port", type=int, default=8443)
    hub.set_defaults(func=_hub)

    twin = commands.add_parser("twin", help="read or change a module twin")
    twin_commands = twin.add_subparsers(metavar="ACTION", required=True)
    show = twin_commands.add_parser("show", help="print the twin as JSON")
    show.add_argument("target", metavar="DEVICE/MODULE")
    _hub_dir_option(show)
    show.set_defaults(func=_twin_show)
    set_ = twin_commands.add_parser("set", help="change desired properties")
    set_.add_argument("target", metavar="DEVICE/MODULE")
    set_.add_argument(
        "assignments",
        metavar="KEY=VALUE",
        nargs="+",
        help="value parsed as JSON when it is JSON (null removes the key)",
    )
    _hub_dir_option(set_)
    set_.set_defaults(func=_twin_set)

    telemetry = commands.add_parser("telemetry", help="print recent telemetry")
    telemetry.add_argument("target", metavar="DEVICE/MODULE")
    telemetry.add_argument("-n", "--limit", type=int, default=20)
    _hub_dir_option(telemetry)
    telemetry.set_defaults(func=_telemetry)


def _hub_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hub-dir",
        type=Path,
        help="dev hub state directory "
        "(default: $PITWIN_HUB_DIR or ~/.local/state/pitwin/devhub)",
    )


def _hub(args: argparse.Namespace) -> int:
    from devhub.hub import DevHub, default_state_dir

    async def serve() -> None:
        hub = DevHub(
            args.hub_dir or default_state_dir(),
            host=args.host,
            mqtt_port=args.mqtt_port,
            service_port=args.service_port,
        )
        async with hub:
            _LOGGER.info(
                "dev hub ready mqtt=%s:%d service=%s",
                args.host,
                args.mqtt_port,
                hub.service_url,
            )
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


def _twin_show(args: argparse.Namespace) -> int:
    device_id, module_id = _target(args.target)
    twin = _service(args).get_module_twin(device_id, module_id)
    print(json.dumps(twin, indent=2, sort_keys=True))
    return 0


def _twin_set(args: argparse.Namespace) -> int:
    device_id, module_id = _target(args.target)
    desired = dict(_assignment(a) for a in args.assignments)
    patch = {"properties": {"desired": desired}}
    twin = _service(args).update_module_twin(device_id, module_id, patch)
    version = twin["properties"]["desired"]["$version"]
    print(f"desired properties of {device_id}/{module_id} now at $version {version}")
    return 0


def _telemetry(args: argparse.Namespace) -> int:
    device_id, module_id = _target(args.target)
    for message in _service(args).telemetry(device_id, module_id, limit=args.limit):
        print(json.dumps(message, sort_keys=True))
    return 0


def _service(args: argparse.Namespace) -> Any:
    from devhub.client import ServiceClient, load_service_info

    info = load_service_info(args.hub_dir)
    return ServiceClient(info.url, info.connection_string, info.ca_path)


def _target(text: str) -> tuple[str, str]:
    device_id, sep, module_id = text.partition("/")
    if not sep or not device_id or not module_id or "/" in module_id:
        raise ConfigError(f"{text!r} is not DEVICE/MODULE; write e.g. pi-demo/light")
    return device_id, module_id


def _assignment(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"{text!r} is not KEY=VALUE; write e.g. sample_interval_s=10")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value
