"""Reconnect delays: capped exponential backoff with full jitter.

Full jitter (a uniform draw between zero and the ceiling) spreads a fleet's
reconnects after a hub outage instead of having every Pi retry in step.
The ceiling only comes back down once a link has stayed up for a while, so
a link that flaps right after each connect keeps backing off.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class Backoff:
    """Delays between connection attempts of one module.

    Args:
        base_s: Ceiling of the first delay.
        cap_s: Largest ceiling.
        stable_after_s: Time a link must stay up before the ceiling resets.
        rng: Source of jitter (seed it in tests).
        monotonic: Clock for measuring how long a link stayed up.
    """

    def __init__(
        self,
        *,
        base_s: float,
        cap_s: float,
        stable_after_s: float,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_s = base_s
        self._cap_s = cap_s
        self._stable_after_s = stable_after_s
        self._rng = rng or random.Random()
        self._monotonic = monotonic
        self._failures = 0
        self._up_since: float | None = None

    @property
    def failures(self) -> int:
        """Consecutive failures counted since the last stable link."""
        return self._failures

    def ceiling_s(self) -> float:
        """Return the ceiling of the next delay."""
        exponent = min(self._failures, 30)
        return float(min(self._cap_s, self._base_s * 2**exponent))

    def next_delay_s(self) -> float:
        """Count a failure and return how long to wait before trying again."""
        ceiling = self.ceiling_s()
        self._failures += 1
        return self._rng.uniform(0.0, ceiling)

    def link_up(self) -> None:
        """Note that a connection has just been established."""
        self._up_since = self._monotonic()

    def link_down(self) -> None:
        """Note that the link dropped; reset if it had been stable."""
        if self._up_since is None:
            return
        if self._monotonic() - self._up_since >= self._stable_after_s:
            self._failures = 0
        self._up_since = None
