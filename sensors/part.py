"""Base of the drivers whose part answers through blocking calls."""

from __future__ import annotations

from collections.abc import Mapping

from sensors.base import Clock, Reading
from sensors.blocking import BlockingCalls
from sensors.sampling import median_values

__all__ = ["BlockingSensor"]


class BlockingSensor:
    """A sensor read with blocking calls, each in a thread with a deadline.

    Subclasses set :attr:`quantities` and implement :meth:`_open_part`,
    :meth:`_sample` and :meth:`_release`; all three run off the event loop
    (``_release`` runs on it only when no call is in flight).

    Args:
        calls: Runs the blocking calls; names the part and its bus.
        samples: Samples per reading; the reading is their median.
        timeout_s: Deadline of each call.
        clock: Stamps readings.
    """

    quantities: tuple[str, ...] = ()

    def __init__(
        self,
        calls: BlockingCalls,
        *,
        samples: int,
        timeout_s: float,
        clock: Clock,
    ) -> None:
        self._calls = calls
        self._samples = samples
        self._timeout_s = timeout_s
        self._clock = clock
        self._closed = False

    @property
    def skipped_reads(self) -> int:
        """Reads skipped because an earlier call was still running."""
        return self._calls.skipped

    async def open(self) -> None:
        """Reach the part; a missing part raises, and a later call retries."""
        self._closed = False
        await self._calls.call(self._open_part, deadline_s=self._timeout_s)

    async def read(self) -> Reading:
        """Take ``samples`` samples and return their median."""
        samples = [
            await self._calls.call(self._sample, deadline_s=self._timeout_s)
            for _ in range(self._samples)
        ]
        return Reading(values=median_values(samples), taken_at=self._clock.now())

    async def close(self) -> None:
        """Release the part once no call uses it; never waits, safe twice."""
        if self._closed:
            return
        self._closed = True
        self._calls.when_idle(self._release)

    def _open_part(self) -> None:
        raise NotImplementedError

    def _sample(self) -> Mapping[str, float]:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError
