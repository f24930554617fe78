"""Serve a dev hub until Ctrl-C: ``python -m devhub --state-dir DIR``."""

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path

from devhub.auth import mask_secrets
from devhub.errors import DevHubError
from devhub.hub import DevHub, default_state_dir


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve until interrupted; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m devhub", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address")
    parser.add_argument("--mqtt-port", type=int, default=8883)
    parser.add_argument("--service-port", type=int, default=8443)
    parser.add_argument("--hostname", default="devhub.local")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        hub = DevHub(
            args.state_dir or default_state_dir(),
            host=args.host,
            mqtt_port=args.mqtt_port,
            service_port=args.service_port,
            hostname=args.hostname,
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(hub))
    except DevHubError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


async def _serve(hub: DevHub) -> None:
    async with hub:
        print(f"service API: {hub.service_url}", file=sys.stderr)
        print(f"service.json: {hub.state_dir / 'service.json'}", file=sys.stderr)
        print(mask_secrets(hub.service_connection_string), file=sys.stderr)
        await asyncio.Event().wait()


if __name__ == "__main__":
    sys.exit(main())
