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
import sys
import time
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

_LOGGER = logging.getLogger(__name__)

# The service API returns at most this many messages per call.
MAX_TELEMETRY = 10_000

FOLLOW_POLL_S = 1.0
FOLLOW_BATCH = 1000


def add_commands(commands: Any) -> None:
    """Add ``hub``, ``twin``, ``method`` and ``telemetry`` to ``pitwin``.

    Args:
        commands: The parser's sub-parsers (``add_subparsers()`` result).
    """
    _add_hub(commands)
    _add_twin(commands)
    _add_method(commands)
    _add_telemetry(commands)


def _add_hub(commands: Any) -> None:
    hub = commands.add_parser(
        "hub", help="serve the local dev hub, or manage its identities"
    )
    _hub_dir_option(hub)
    hub.set_defaults(hub_dir=None)
    hub.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    hub.add_argument("--mqtt-port", type=int, default=8883)
    hub.add_argument("--service-port", type=int, default=8443)
    hub.set_defaults(func=_hub)
    # Without an action, 'pitwin hub' serves; the actions talk to a running hub.
    actions = hub.add_subparsers(metavar="ACTION", required=False)
    device = actions.add_parser("device", help="add, list or delete devices")
    device_actions = device.add_subparsers(metavar="ACTION", required=True)
    for name, func, help_text in (
        ("add", _device_add, "register a device with fresh keys"),
        ("delete", _device_delete, "delete a device, its modules and twins"),
    ):
        action = device_actions.add_parser(name, help=help_text)
        action.add_argument("device_id", metavar="DEVICE")
        _hub_dir_option(action)
        action.set_defaults(func=func)
    listing = device_actions.add_parser("list", help="list the devices")
    _hub_dir_option(listing)
    listing.set_defaults(func=_device_list)

    module = actions.add_parser("module", help="add, list or delete modules")
    module_actions = module.add_subparsers(metavar="ACTION", required=True)
    for name, func, help_text in (
        ("add", _module_add, "register a module; prints its connection string"),
        ("show", _module_show, "print a module's connection string again"),
        ("delete", _module_delete, "delete a module and its twin"),
    ):
        action = module_actions.add_parser(name, help=help_text)
        action.add_argument("target", metavar="DEVICE/MODULE")
        _hub_dir_option(action)
        action.set_defaults(func=func)
    listing = module_actions.add_parser("list", help="list a device's modules")
    listing.add_argument("device_id", metavar="DEVICE")
    _hub_dir_option(listing)
    listing.set_defaults(func=_module_list)


def _add_twin(commands: Any) -> None:
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
    tags = twin_commands.add_parser("tags", help="change tags (service side only)")
    tags.add_argument("target", metavar="DEVICE/MODULE")
    tags.add_argument(
        "assignments",
        metavar="KEY=VALUE",
        nargs="+",
        help="value parsed as JSON when it is JSON (null removes the tag)",
    )
    _hub_dir_option(tags)
    tags.set_defaults(func=_twin_tags)


def _add_method(commands: Any) -> None:
    method = commands.add_parser("method", help="call a module's direct method")
    method.add_argument("target", metavar="DEVICE/MODULE")
    method.add_argument("name", metavar="NAME")
    method.add_argument(
        "payload", metavar="JSON", nargs="?", default="null", help="the payload"
    )
    method.add_argument(
        "--timeout",
        type=int,
        default=30,
        metavar="S",
        help="seconds to wait for the answer, 5 to 300 (default 30)",
    )
    _hub_dir_option(method)
    method.set_defaults(func=_method)


def _add_telemetry(commands: Any) -> None:
    telemetry = commands.add_parser("telemetry", help="print recent telemetry")
    telemetry.add_argument("target", metavar="DEVICE/MODULE")
    telemetry.add_argument(
        "-n", "--limit", type=_message_count, default=20, help="1 to 10000 (default 20)"
    )
    telemetry.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new messages"
    )
    _hub_dir_option(telemetry)
    telemetry.set_defaults(func=_telemetry)


def _message_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_TELEMETRY:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a count from 1 to {MAX_TELEMETRY}"
        )
    return count


def _hub_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hub-dir",
        type=Path,
        # SUPPRESS: an action's own default must not hide a --hub-dir given
        # before it ('pitwin hub --hub-dir D module list'); 'hub' sets None.
        default=argparse.SUPPRESS,
        help="dev hub state directory "
        "(default: $PITWIN_HUB_DIR or ~/.local/state/pitwin/devhub)",
    )


def _hub(args: argparse.Namespace) -> int:
    from devhub.hub import DevHub, default_state_dir

    async def serve() -> None:
        hub = DevHub(
            _hub_dir(args) or default_state_dir(),
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


def _twin_tags(args: argparse.Namespace) -> int:
    device_id, module_id = _target(args.target)
    tags = dict(_assignment(a) for a in args.assignments)
    twin = _service(args).update_module_twin(device_id, module_id, {"tags": tags})
    print(json.dumps(twin["tags"], indent=2, sort_keys=True))
    return 0


def _method(args: argparse.Namespace) -> int:
    device_id, module_id = _target(args.target)
    try:
        payload = json.loads(args.payload)
    except ValueError:
        raise ConfigError(
            f"payload {args.payload!r} is not JSON; quote strings, e.g. '\"on\"'"
        ) from None
    result = _service(args).invoke_method(
        device_id, module_id, args.name, payload, timeout_s=args.timeout
    )
    print(json.dumps(result, indent=2, sort_keys=True))
    status = result.get("status")
    return 0 if isinstance(status, int) and 200 <= status < 300 else 1


def _telemetry(args: argparse.Namespace) -> int:
    device_id, module_id = _target(args.target)
    service = _service(args)
    messages = service.telemetry(device_id, module_id, limit=args.limit)
    last = _print_messages(messages, after=0)
    while args.follow:
        # The service API has no push channel; poll it (Ctrl-C stops).
        time.sleep(FOLLOW_POLL_S)
        messages = service.telemetry(
            device_id, module_id, limit=FOLLOW_BATCH, after=last
        )
        last = _print_messages(messages, after=last)
    return 0


def _print_messages(messages: list[Any], *, after: int) -> int:
    for message in messages:
        print(json.dumps(message, sort_keys=True), flush=True)
        after = max(after, int(message.get("sequence_number", 0)))
    return after


def _device_add(args: argparse.Namespace) -> int:
    device = _service(args).add_device(args.device_id)
    print(f"device {device['deviceId']} added")
    return 0


def _device_list(args: argparse.Namespace) -> int:
    for device in _service(args).list_devices():
        print(f"{device['deviceId']}  {device['connectionState']}")
    return 0


def _device_delete(args: argparse.Namespace) -> int:
    _service(args).delete_device(args.device_id)
    print(f"device {args.device_id} deleted, with its modules and twins")
    return 0


def _module_add(args: argparse.Namespace) -> int:
    device_id, module_id = _target(args.target)
    module = _service(args).add_module(device_id, module_id)
    _print_module_credentials(args, device_id, module_id, module)
    return 0


def _module_show(args: argparse.Namespace) -> int:
    device_id, module_id = _target(args.target)
    module = _service(args).get_module(device_id, module_id)
    _print_module_credentials(args, device_id, module_id, module)
    return 0


def _print_module_credentials(
    args: argparse.Namespace, device_id: str, module_id: str, module: Any
) -> None:
    """Print the connection string, and on stderr the agent config lines."""
    from devhub.client import load_service_info

    info = load_service_info(_hub_dir(args))
    key = module["authentication"]["symmetricKey"]["primaryKey"]
    print(
        f"HostName={info.hostname};DeviceId={device_id};ModuleId={module_id};"
        f"SharedAccessKey={key};GatewayHostName={info.mqtt_host}"
    )
    print(
        f'# in pitwin.toml: [device] id = "{device_id}", '
        f'hub_hostname = "{info.hostname}", gateway_host = "{info.mqtt_host}", '
        f'ca_file = "{info.ca_path}"; [modules.{module_id}] key = "{key}"',
        file=sys.stderr,
    )


def _module_list(args: argparse.Namespace) -> int:
    for module in _service(args).list_modules(args.device_id):
        print(f"{module['deviceId']}/{module['moduleId']}  {module['connectionState']}")
    return 0


def _module_delete(args: argparse.Namespace) -> int:
    device_id, module_id = _target(args.target)
    _service(args).delete_module(device_id, module_id)
    print(f"module {device_id}/{module_id} deleted, with its twin")
    return 0


def _service(args: argparse.Namespace) -> Any:
    from devhub.client import ServiceClient, load_service_info

    info = load_service_info(_hub_dir(args))
    return ServiceClient(info.url, info.connection_string, info.ca_path)


def _hub_dir(args: argparse.Namespace) -> Path | None:
    hub_dir: Path | None = getattr(args, "hub_dir", None)
    return hub_dir


def _target(text: str) -> tuple[str, str]:
    device_id, sep, module_id = text.partition("/")
    if not sep or not device_id or not module_id or "/" in module_id:
        raise ConfigError(f"{text!r} is not DEVICE/MODULE; write e.g. pi-demo/light")
    return device_id, module_id


def _assignment(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"{text!r} is not KEY=VALUE; write e.g. sample_interval_s=10")
    if key.startswith("$"):
        raise ConfigError(
            f"{key!r} is kept by the hub ($version, $metadata); set your own keys"
        )
    try:
        value = json.loads(raw, parse_constant=_not_json)
    except ValueError:
        value = raw
    return key, value


def _not_json(name: str) -> Any:
    # json.loads takes NaN and Infinity, which are not JSON: keep them text.
    raise ValueError(f"{name} is not JSON")
