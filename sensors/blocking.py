"""Blocking sensor I/O off the event loop: one call at a time, under a bus lock.

Real parts block: an I2C transfer, a DHT pulse train, gpiozero timing a
capacitor. Each call runs in a worker thread (:func:`asyncio.to_thread`) with
a deadline. A thread cannot be stopped, so a call that misses its deadline
keeps running; until it returns, the part's next calls are skipped and
counted instead of stacking up more stuck threads.

Parts on one physical bus (``/dev/i2c-1``, one SPI port, one GPIO line)
share an :class:`asyncio.Lock`. It is held until the thread really ends, not
until the caller gives up, so a transaction of several steps (write a
command, wait, read) is never interleaved with another part's on the same
wires. Parts on other buses never wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from sensors.base import SensorUnavailable

__all__ = ["BlockingCalls", "bus_lock"]

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

# asyncio locks belong to the loop they first wait on, so the registry is
# kept per loop (tests and `pitwin doctor` each run their own loop).
_LOCKS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, asyncio.Lock]
] = weakref.WeakKeyDictionary()


def bus_lock(bus: str) -> asyncio.Lock:
    """Return the lock of a physical bus, shared by every part on it.

    Args:
        bus: The bus's name, e.g. ``/dev/i2c-1``; equal names, one lock.
    """
    locks = _LOCKS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(bus, asyncio.Lock())


class BlockingCalls:
    """Runs one part's blocking calls in worker threads, one at a time.

    Args:
        part: How messages name the part, e.g. ``BH1750 on I2C 0x23
            /dev/i2c-1``.
        bus: The physical bus the part sits on (see :func:`bus_lock`).
    """

    def __init__(self, part: str, bus: str) -> None:
        self.part = part
        self.bus = bus
        self.skipped = 0
        self._mutex = threading.Lock()
        self._busy = False
        self._on_idle: list[Callable[[], None]] = []
        self._task: asyncio.Task[Any] | None = None

    @property
    def busy(self) -> bool:
        """Whether a thread of this part is still running."""
        with self._mutex:
            return self._busy

    async def call(self, fn: Callable[[], _T], *, deadline_s: float) -> _T:
        """Run ``fn`` in a thread under the bus lock; give up after the deadline.

        Args:
            fn: The blocking work.
            deadline_s: Seconds allowed for waiting on the bus and running.

        Returns:
            What ``fn`` returned.

        Raises:
            SensorUnavailable: A previous call is still running, the bus
                stayed busy, or ``fn`` missed the deadline.
            Exception: Whatever ``fn`` raised.
        """
        if self.busy:
            self.skipped += 1
            raise SensorUnavailable(
                f"{self.part}: the previous read is still running; "
                f"read skipped ({self.skipped} so far); "
                "if this repeats, check the wiring and power"
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        lock = bus_lock(self.bus)
        try:
            async with asyncio.timeout_at(deadline):
                await lock.acquire()
        except TimeoutError:
            raise SensorUnavailable(
                f"{self.part}: {self.bus} stayed busy for {deadline_s:g} s "
                "(another part's call on it hangs); read skipped"
            ) from None
        with self._mutex:
            self._busy = True
        task = asyncio.create_task(
            asyncio.to_thread(self._run, fn), name=f"sensor[{self.part}].io"
        )
        task.add_done_callback(lambda done: _finished(done, lock))
        self._task = task
        try:
            async with asyncio.timeout_at(deadline):
                # Shielded: giving up must not end the task, whose end
                # releases the bus lock when the thread really returns.
                return await asyncio.shield(task)
        except TimeoutError:
            raise SensorUnavailable(
                f"{self.part}: no answer within {deadline_s:g} s; "
                "check the wiring and power"
            ) from None

    def when_idle(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` now, or in the worker thread once its call returns.

        Used by ``close()``: a bus or pin is released only when no thread
        still uses it, and ``close()`` itself never waits.
        """
        with self._mutex:
            if self._busy:
                self._on_idle.append(fn)
                return
        fn()

    def _run(self, fn: Callable[[], _T]) -> _T:
        try:
            return fn()
        finally:
            with self._mutex:
                self._busy = False
                pending, self._on_idle = self._on_idle, []
            for callback in pending:
                _run_quietly(callback, self.part)


def _finished(task: asyncio.Task[Any], lock: asyncio.Lock) -> None:
    lock.release()
    if not task.cancelled():
        # Mark the outcome seen: a caller that gave up never awaits it.
        task.exception()


def _run_quietly(callback: Callable[[], None], part: str) -> None:
    try:
        callback()
    except Exception:
        _LOGGER.exception("sensor release failed part=%s", part)
