"""Logging set-up: journald priorities, terminal times, secrets masked."""

from __future__ import annotations

import logging
import os
import re
import sys

# journald reads a leading "<N>" as the syslog priority of the line.
_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}
_SECRET_RE = re.compile(
    r"(SharedAccessKey=|SharedAccessSignature |sig=|sig%3D)[^;&\s\"']+",
    re.IGNORECASE,
)
_NOISY_LIBRARIES = ("paho", "aiomqtt", "aiohttp.access")
# The SDK logs every dropped connection as a multi-line WARNING with a
# traceback; pitwin reconnects itself and logs the outage once.
_SDK_LOGGER = "azure.iot.device"


def mask_secrets(text: str) -> str:
    """Return ``text`` with keys, signatures and tokens replaced by ``***``."""
    return _SECRET_RE.sub(lambda m: m.group(1) + "***", text)


class _MaskingFormatter(logging.Formatter):
    """Formats a record, then masks anything that looks like a secret."""

    def __init__(self, fmt: str, *, journald: bool) -> None:
        super().__init__(fmt, datefmt="%H:%M:%S")
        self._journald = journald

    def format(self, record: logging.LogRecord) -> str:
        text = mask_secrets(super().format(record))
        if self._journald:
            priority = _SYSLOG_PRIORITY.get(record.levelno, 6)
            return "\n".join(f"<{priority}>{line}" for line in text.splitlines())
        return text


def setup_logging(*, verbose: bool = False, stream: object = None) -> None:
    """Configure the root logger once, for the whole process.

    Under systemd (``JOURNAL_STREAM`` set) lines carry a priority prefix and
    no time: the journal adds both. On a terminal they carry a short time.

    Args:
        verbose: Show DEBUG lines, and the SDK's own INFO lines.
        stream: Where to write (standard error by default).
    """
    out = stream if stream is not None else sys.stderr
    journald = bool(os.environ.get("JOURNAL_STREAM"))
    if journald:
        fmt = "%(name)s: %(message)s"
    elif getattr(out, "isatty", lambda: False)():
        fmt = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    else:
        fmt = "%(levelname)s %(name)s: %(message)s"
    handler = logging.StreamHandler(out)  # type: ignore[arg-type]
    handler.setFormatter(_MaskingFormatter(fmt, journald=journald))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in _NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger(_SDK_LOGGER).setLevel(logging.INFO if verbose else logging.ERROR)
    # The SDK's handler threads report their own hiccups through the
    # executor's "exception calling callback" traceback; pitwin notices the
    # effect (a dropped link) and logs it once.
    logging.getLogger("concurrent.futures").setLevel(
        logging.ERROR if verbose else logging.CRITICAL
    )
