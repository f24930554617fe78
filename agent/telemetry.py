"""Sending a module's readings: packs from the outbox to the hub, in order.

A pack goes when it is due (full, or its oldest reading has waited long
enough), is deleted from the outbox only once the hub acknowledged it, and
is resent unchanged after a failure. The outbox's figures go into the
module's reported properties now and then.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from agent.errors import StorageError
from agent.hubclient import ModuleLink
from agent.outbox import Outbox, OutboxStats, Pack

_LOGGER = logging.getLogger(__name__)
_TELEMETRY = logging.getLogger("agent.telemetry")

# The outbox's figures go into reported properties at most this often
# (twin updates are metered and throttled), and at once when it drops.
OUTBOX_REPORT_INTERVAL_S = 600.0
STORAGE_RETRY_S = 5.0


class TelemetrySender:
    """Sends one module's packs and reports its outbox.

    Args:
        module_id: The module whose readings these are.
        outbox: Where the readings wait.
        max_latency_s: Longest a reading waits for its pack to fill.
        report: Receives the reported ``outbox`` property.
        monotonic: Clock for the report interval.
    """

    def __init__(
        self,
        module_id: str,
        outbox: Outbox,
        *,
        max_latency_s: float,
        report: Callable[[dict[str, Any]], None],
        monotonic: Callable[[], float],
    ) -> None:
        self._name = module_id
        self._outbox = outbox
        self._latency_s = max_latency_s
        self._report = report
        self._monotonic = monotonic
        self._reported: tuple[float, OutboxStats] | None = None
        self._storage_failing = False
        self._unstored = 0
        self._unstored_reported = 0

    def unstored(self) -> None:
        """Count a reading the outbox could not store (disk full)."""
        self._unstored += 1

    async def send_due(self, link: ModuleLink) -> float | None:
        """Send every pack that is due; return seconds until the next one.

        Raises:
            LinkError: A send failed; the pack stays and goes again later.
        """
        try:
            return await self._send_due(link)
        except StorageError as err:
            # A pack that went out but could not be deleted goes again,
            # under the same message id.
            if not self._storage_failing:
                _LOGGER.warning(
                    "outbox failing, sending paused module=%s error=%s",
                    self._name,
                    err,
                )
            self._storage_failing = True
            return STORAGE_RETRY_S

    async def _send_due(self, link: ModuleLink) -> float | None:
        while pack := await asyncio.to_thread(
            self._outbox.next_pack, self._name, max_latency_s=self._latency_s
        ):
            await link.send(
                pack.body, message_id=pack.message_id, properties=_properties(pack)
            )
            await asyncio.to_thread(self._outbox.acked, pack)
            _TELEMETRY.debug(
                "readings sent module=%s message_id=%s count=%d bytes=%d",
                self._name,
                pack.message_id,
                pack.count,
                len(pack.body),
            )
        await self._report_outbox()
        self._storage_failing = False
        return await asyncio.to_thread(
            self._outbox.due_in_s, self._name, max_latency_s=self._latency_s
        )

    async def _report_outbox(self) -> None:
        stats = await asyncio.to_thread(self._outbox.stats, self._name)
        now = self._monotonic()
        if self._reported is not None:
            last_at, last = self._reported
            dropped = stats.dropped - last.dropped
            if dropped:
                _LOGGER.warning(
                    "outbox full or stale, readings dropped module=%s dropped=%d",
                    self._name,
                    dropped,
                )
            news = dropped > 0 or self._unstored > self._unstored_reported
            due = now - last_at >= OUTBOX_REPORT_INTERVAL_S and stats != last
            if not (news or due):
                return
        self._reported = (now, stats)
        self._unstored_reported = self._unstored
        report = _outbox_report(stats)
        if self._unstored:
            report["unstored"] = self._unstored
        self._report({"outbox": report})


def _properties(pack: Pack) -> dict[str, str]:
    """Application properties of a pack, for routing queries in the hub."""
    return {
        "module": pack.module_id,
        "first_seq": str(pack.first_seq),
        "last_seq": str(pack.last_seq),
        "count": str(pack.count),
    }


def _outbox_report(stats: OutboxStats) -> dict[str, Any]:
    """The reported ``outbox`` property; absent figures are left out."""
    report: dict[str, Any] = {"depth": stats.depth, "dropped": stats.dropped}
    if stats.oldest_age_s is not None:
        report["oldest_age_s"] = round(stats.oldest_age_s, 1)
    if stats.last_sent is not None:
        report["last_sent"] = dt.datetime.fromtimestamp(
            stats.last_sent, dt.UTC
        ).isoformat(timespec="seconds")
    return report
