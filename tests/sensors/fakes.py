"""Fakes the sensor tests drive by hand."""

from __future__ import annotations

import datetime as dt

FAKE_EPOCH = dt.datetime(2024, 6, 21, tzinfo=dt.UTC)


class FakeClock:
    """A clock that moves only when a test advances it."""

    def __init__(self, *, now: dt.datetime = FAKE_EPOCH) -> None:
        self._start = now
        self._elapsed_s = 0.0

    def monotonic(self) -> float:
        """Return the seconds advanced so far."""
        return self._elapsed_s

    def now(self) -> dt.datetime:
        """Return the start time plus the seconds advanced so far."""
        return self._start + dt.timedelta(seconds=self._elapsed_s)

    def advance(self, seconds: float) -> None:
        """Move time forward; a monotonic clock never goes back."""
        assert seconds >= 0, f"cannot move a monotonic clock back by {seconds} s"
        self._elapsed_s += seconds

    def sleep(self, seconds: float) -> None:
        """Advance instead of waiting, as a part's conversion time passes."""
        self.advance(max(seconds, 0.0))
