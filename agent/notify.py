"""The systemd notify protocol: READY, WATCHDOG, STATUS and STOPPING.

systemd hands a service a datagram socket in ``$NOTIFY_SOCKET`` (a path, or
an abstract name written with a leading ``@``) and, with ``WatchdogSec=``,
the deadline in ``$WATCHDOG_USEC``. Each message is one datagram of
``KEY=value`` lines (sd_notify(3)). Outside systemd both are unset and every
call here does nothing, so ``pitwin run`` behaves the same on a laptop.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

_LOGGER = logging.getLogger(__name__)


class Notifier:
    """Sends state changes to the service manager, if there is one.

    Args:
        environ: Where ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and
            ``WATCHDOG_PID`` are read; the process environment by default.
        pid: This process's id, compared with ``WATCHDOG_PID``.
    """

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        pid: int | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_s = _watchdog_interval_s(
            env, os.getpid() if pid is None else pid
        )
        self._sock: socket.socket | None = None
        self._stopping = False

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens."""
        return self._address is not None

    @property
    def watchdog_s(self) -> float | None:
        """The watchdog deadline in seconds, or ``None`` if none is armed."""
        return self._watchdog_s if self.enabled else None

    def ready(self, status: str) -> None:
        """Say that start-up is over, with the first status line."""
        self.send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        """Replace the one-line status ``systemctl status`` shows."""
        self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        """Tell the watchdog the service is alive."""
        self.send("WATCHDOG=1")

    def stopping(self) -> None:
        """Say that shutdown has begun; later calls do nothing."""
        if not self._stopping:
            self._stopping = True
            self.send("STOPPING=1\nSTATUS=stopping")

    def send(self, message: str) -> None:
        """Send one datagram; failures are logged, never raised.

        The socket is non-blocking: a service manager that does not read
        must not stall the event loop, and a lost ping only means the
        watchdog acts as if the process had hung.
        """
        if self._address is None:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto(message.encode("utf-8"), self._address)
        except OSError as err:
            _LOGGER.debug("notify failed message=%s error=%s", message[:20], err)

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _socket_address(value: str) -> str | bytes | None:
    if value.startswith("@"):
        # An abstract socket: its name starts with a NUL byte on the wire.
        return b"\0" + value[1:].encode("utf-8")
    if value.startswith("/"):
        return value
    # Empty, or a form this process cannot use (vsock:...): stay quiet.
    return None


def _watchdog_interval_s(env: Mapping[str, str], pid: int) -> float | None:
    owner = env.get("WATCHDOG_PID")
    if owner and owner.strip() != str(pid):
        # The deadline belongs to another process (a parent that forked us).
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None
