"""A plausible wall clock before any SAS token is minted.

A Raspberry Pi has no battery-backed clock: until NTP answers it boots at
the last saved time (fake-hwclock) or at 1970. A SAS token carries its
expiry as Unix time, so one minted then is refused by the hub, or, minted
years ahead, would stay valid far too long. The agent therefore builds no
hub client while the clock reads earlier than the day this release was
built.

Waiting for NTP itself (``timedatectl``'s "synchronized") would be stricter,
but a Pi with a real-time clock on a network without NTP would then never
connect. A clock that is plausible yet still behind (fake-hwclock restoring
last week) gets its tokens refused; the runner rebuilds the client after
such a refusal, which mints a fresh token from the corrected clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

_LOGGER = logging.getLogger(__name__)

# The day this release was built; no correct clock reads earlier. Moved
# forward at each release.
BUILD_DATE = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
CLOCK_POLL_S = 5.0


def utc_now() -> dt.datetime:
    """Return the system's wall-clock time in UTC."""
    return dt.datetime.now(dt.UTC)


def clock_plausible(now: dt.datetime, *, not_before: dt.datetime = BUILD_DATE) -> bool:
    """Return whether ``now`` can be the real time."""
    return now >= not_before


async def wait_for_plausible_clock(
    *,
    now: Callable[[], dt.datetime] = utc_now,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    log: logging.Logger = _LOGGER,
    not_before: dt.datetime = BUILD_DATE,
    poll_s: float = CLOCK_POLL_S,
) -> None:
    """Return once the clock reads ``not_before`` or later.

    Returns at once when it already does. Otherwise logs one warning, checks
    again every ``poll_s`` and logs once more when the clock is right.

    Args:
        now: Wall-clock time source (UTC).
        sleep: How to wait between checks.
        log: Where the two lines go.
        not_before: The earliest time taken as plausible.
        poll_s: Seconds between checks.
    """
    seen = now()
    if clock_plausible(seen, not_before=not_before):
        return
    log.warning(
        "clock not plausible, waiting before minting SAS tokens now=%s "
        "not_before=%s; check NTP (timedatectl status)",
        seen.isoformat(timespec="seconds"),
        not_before.date().isoformat(),
    )
    while not clock_plausible(seen := now(), not_before=not_before):
        await sleep(poll_s)
    log.info("clock plausible now=%s", seen.isoformat(timespec="seconds"))
