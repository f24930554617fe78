"""The ``pitwin`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from agent.doctor import add_commands as add_doctor_commands
from agent.errors import ConfigError, PitwinError
from agent.logs import setup_logging
from devhub.cli import add_commands as add_hub_commands

_LOGGER = logging.getLogger(__name__)

# sysexits.h: configuration error.
EX_CONFIG = 78


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pitwin`` command; return its exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    setup_logging(verbose=args.verbose)
    try:
        result: int = args.func(args)
    except PitwinError as err:
        _print_error(err)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pitwin",
        description="Raspberry Pi sensors as Azure IoT Hub module twins.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug lines")
    commands = parser.add_subparsers(metavar="COMMAND")

    run = commands.add_parser("run", help="run the agent (the service)")
    run.add_argument("-c", "--config", type=Path, required=True, help="agent TOML file")
    run.set_defaults(func=_run)

    demo = commands.add_parser(
        "demo", help="dev hub + agent with simulated sensors, in one process"
    )
    demo.add_argument("--hub-dir", type=Path, help="dev hub state directory")
    demo.add_argument(
        "--host", default="127.0.0.1", help="loopback address for the dev hub"
    )
    demo.add_argument(
        "--speed",
        type=float,
        default=600.0,
        help="simulated seconds per real second (default 600)",
    )
    demo.set_defaults(func=_demo)

    add_doctor_commands(commands)
    add_hub_commands(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.notify import Notifier
    from agent.supervisor import Agent

    notifier = Notifier()
    try:
        agent = Agent(load_config(args.config), notifier=notifier)
    except ConfigError as err:
        # A distinct status, so the unit's RestartPreventExitStatus= stops
        # systemd from retrying a config that only a person can fix.
        _print_error(err)
        notifier.close()
        return EX_CONFIG
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_until_signalled(agent.run(), on_signal=agent.stopping))
    finally:
        notifier.close()
    return 0


async def _until_signalled(
    work: Coroutine[Any, Any, None],
    *,
    on_signal: Callable[[], None] | None = None,
) -> None:
    """Run ``work``; SIGTERM or SIGINT cancels it so clients close cleanly.

    Args:
        work: The coroutine to run.
        on_signal: Called on the first signal, before ``work`` is cancelled.
    """
    task = asyncio.create_task(work, name="agent")
    loop = asyncio.get_running_loop()

    def stop(signum: signal.Signals) -> None:
        if task.cancelling():
            # A second signal cancels again, which hurries the clean-up.
            _LOGGER.warning("stopping already, cancelling again signal=%s", signum.name)
        else:
            _LOGGER.info("stopping signal=%s", signum.name)
            if on_signal is not None:
                on_signal()
        task.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    _LOGGER.info("agent stopped")


def _demo(args: argparse.Namespace) -> int:
    from agent.demo import run_demo

    if args.speed <= 0:
        raise ConfigError(
            f"--speed {args.speed:g} is not allowed; use a positive number"
        )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _until_signalled(
                run_demo(hub_dir=args.hub_dir, host=args.host, speed=args.speed)
            )
        )
    print("demo stopped", file=sys.stderr)
    return 0


def _print_error(err: Exception) -> None:
    # Under journald, "<3>" files the line as an error, so that
    # journalctl -p err shows why the service stopped.
    prefix = "<3>" if os.environ.get("JOURNAL_STREAM") else ""
    print(f"{prefix}pitwin: error: {err}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
