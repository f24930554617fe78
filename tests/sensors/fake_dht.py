"""A stand-in for ``adafruit_dht.DHT22``/``DHT11`` that behaves like it.

As in adafruit_dht: reading ``temperature`` or ``humidity`` measures, unless
the last attempt was 2 s ago or less, in which case the previous values come
back (even after a failed attempt, so they may be stale); failed
measurements raise ``RuntimeError`` with the library's messages; ``exit()``
stops the pulse reader. Outcomes are scripted; the time is the fake clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from tests.sensors.fakes import FakeClock

CHECKSUM = "Checksum did not validate. Try again."
BUFFER = "A full buffer was not returned. Try again."
NOT_FOUND = "DHT sensor not found, check wiring"
HANG = "hang"

Outcome = tuple[float, float] | str


class FakeDht:
    """One DHT part on one pin, with a script of measurement outcomes."""

    def __init__(self, clock: FakeClock, outcomes: Iterable[Outcome] = ()) -> None:
        self.clock = clock
        self.outcomes: list[Outcome] = list(outcomes)
        self.measurements = 0
        self.exits = 0
        self.released = threading.Event()
        self.hanging = threading.Event()
        self._last_called: float | None = None
        self._temperature: float | None = None
        self._humidity: float | None = None

    @property
    def temperature(self) -> float | None:
        self._measure()
        return self._temperature

    @property
    def humidity(self) -> float | None:
        self._measure()
        return self._humidity

    def exit(self) -> None:
        self.exits += 1
        self.released.set()

    def _measure(self) -> None:
        assert not self.exits, "read after exit()"
        now = self.clock.monotonic()
        if self._last_called is not None and now - self._last_called <= 2:
            return
        self._last_called = now
        self.measurements += 1
        outcome = self.outcomes.pop(0) if self.outcomes else NOT_FOUND
        if outcome == HANG:
            self.hanging.set()
            # Stuck until exit() ends the pulse reader (or the test lets go).
            self.released.wait(timeout=30)
            raise RuntimeError("Timed out waiting for PulseIn message")
        if isinstance(outcome, str):
            raise RuntimeError(outcome)
        self._temperature, self._humidity = outcome


class FakeDhtReader:
    """The ``dht_reader`` factory: records pins, hands out one device."""

    def __init__(self, device: FakeDht) -> None:
        self.device = device
        self.pins: list[int] = []

    def __call__(self, pin: int) -> FakeDht:
        self.pins.append(pin)
        return self.device
