"""Tests for agent/notify.py and the agent's use of it (READY, WATCHDOG, ...).

The agent runs in-process with simulated sensors and a hub address on
loopback where nothing listens: modules start without connecting. A real
AF_UNIX datagram socket stands in for systemd's notify socket; a thread
reads it, so it keeps time even while the event loop is blocked.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from agent.cli import _until_signalled
from agent.config import AgentConfig, LinkConfig, ModuleConfig
from agent.notify import Notifier
from agent.supervisor import Agent
from sensors.base import Reading, Sensor
from sensors.registry import create_sensor

WATCHDOG_USEC = 200_000  # pings every 0.1 s
WAIT_S = 30.0
KINDS = ("light", "moisture", "temperature")


class NotifySocket:
    """A bound notify socket; a thread keeps each datagram with its time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[tuple[float, str]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._notifiers: list[Notifier] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def notifier(self, **env: str) -> Notifier:
        notifier = Notifier(environ={"NOTIFY_SOCKET": str(self.path), **env})
        self._notifiers.append(notifier)
        return notifier

    def close(self) -> None:
        for notifier in self._notifiers:
            notifier.close()
        self._stop.set()
        self._thread.join()
        self._sock.close()

    def times_of(self, line: str) -> list[float]:
        return [t for t, m in list(self.messages) if line in m.splitlines()]

    def statuses(self) -> list[str]:
        return [
            line.removeprefix("STATUS=")
            for _, m in list(self.messages)
            for line in m.splitlines()
            if line.startswith("STATUS=")
        ]

    async def wait_for(self, line: str, *, count: int = 1) -> None:
        await wait_until(lambda: len(self.times_of(line)) >= count)


async def wait_until(condition: Callable[[], bool], *, step_s: float = 0.02) -> None:
    for _ in range(int(WAIT_S / step_s)):
        if condition():
            return
        await asyncio.sleep(step_s)
    pytest.fail(f"not true within {WAIT_S:g}s")


class RecordingSensor:
    """Wraps a sensor and records that it was closed."""

    def __init__(self, inner: Sensor, *, fail_with: Exception | None = None) -> None:
        self._inner = inner
        self._fail_with = fail_with
        self.closed = False

    @property
    def quantities(self) -> tuple[str, ...]:
        return self._inner.quantities

    async def open(self) -> None:
        await self._inner.open()

    async def read(self) -> Reading:
        if self._fail_with is not None:
            raise self._fail_with
        return await self._inner.read()

    async def close(self) -> None:
        self.closed = True
        await self._inner.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    """Give a bound notify socket in the test's directory."""
    sock = NotifySocket(tmp_path / "notify")
    yield sock
    sock.close()


def agent_config(tmp_path: Path) -> AgentConfig:
    key = base64.b64encode(b"k" * 32).decode()
    modules = {
        kind: ModuleConfig(
            module_id=kind,
            kind=kind,
            driver=f"simulated-{kind}",
            sensor={"seed": 1},
            properties={},
            key=key,
        )
        for kind in KINDS
    }
    return AgentConfig(
        device_id="pi-test",
        hub_hostname="hub.invalid",
        # Loopback, where nothing listens: every connect fails at once.
        gateway_host="127.254.0.1",
        ca_pem=None,
        state_dir=tmp_path / "state",
        modules=modules,
        link=LinkConfig(backoff_base_s=0.2, backoff_cap_s=0.5, call_timeout_s=5),
    )


def make_agent(
    tmp_path: Path,
    sock: NotifySocket,
    sensors: list[RecordingSensor],
    *,
    fail_with: Exception | None = None,
    **kwargs: Any,
) -> Agent:
    def build(driver: str, options: Mapping[str, Any]) -> Sensor:
        sensor = RecordingSensor(create_sensor(driver, options), fail_with=fail_with)
        sensors.append(sensor)
        return sensor

    return Agent(
        agent_config(tmp_path),
        sensor_builder=build,
        notifier=sock.notifier(WATCHDOG_USEC=str(WATCHDOG_USEC)),
        **kwargs,
    )


def test_notifier_without_socket_does_nothing() -> None:
    """Test that outside systemd nothing is sent and no watchdog is armed."""
    notifier = Notifier(environ={"WATCHDOG_USEC": "1000000"})

    notifier.ready("x")
    notifier.watchdog()

    assert not notifier.enabled
    assert notifier.watchdog_s is None


def test_notifier_reaches_abstract_socket() -> None:
    """Test that an ``@`` name is the abstract socket of that name."""
    name = f"pitwin-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(b"\0" + name.encode())
        server.settimeout(5)
        notifier = Notifier(environ={"NOTIFY_SOCKET": f"@{name}"})

        notifier.status("2 modules: a connected, b connecting")

        assert server.recv(4096) == b"STATUS=2 modules: a connected, b connecting"
        notifier.close()


@pytest.mark.parametrize(
    ("env", "expected_s"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
    ids=["set", "our-pid", "other-pid", "zero", "garbage"],
)
def test_watchdog_deadline(env: dict[str, str], expected_s: float | None) -> None:
    """Test that the deadline comes from WATCHDOG_USEC for our pid only."""
    notifier = Notifier(environ={"NOTIFY_SOCKET": "/run/x", **env}, pid=4242)

    assert notifier.watchdog_s == expected_s


def test_stopping_is_sent_once(notify_socket: NotifySocket) -> None:
    """Test that STOPPING=1 goes out once however often it is asked for."""
    notifier = notify_socket.notifier()

    notifier.stopping()
    notifier.stopping()
    time.sleep(0.3)

    assert len(notify_socket.times_of("STOPPING=1")) == 1


async def test_ready_watchdog_status_stopping(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    """Test the whole life: READY, pings, STATUS, no pings while blocked, STOPPING."""
    sensors: list[RecordingSensor] = []
    agent = make_agent(tmp_path, notify_socket, sensors)
    task = asyncio.create_task(agent.run())

    await notify_socket.wait_for("READY=1")
    await notify_socket.wait_for("WATCHDOG=1", count=5)
    loop = asyncio.get_running_loop()
    blocked_from = time.monotonic()
    # A callback that hogs the loop for ten watchdog periods.
    loop.call_soon(time.sleep, 1.0)
    await asyncio.sleep(0)
    blocked_until = time.monotonic()
    pings_after = len(notify_socket.times_of("WATCHDOG=1")) + 3
    await notify_socket.wait_for("WATCHDOG=1", count=pings_after)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await notify_socket.wait_for("STOPPING=1")

    assert blocked_until - blocked_from >= 1.0
    pings = notify_socket.times_of("WATCHDOG=1")
    # Allow one ping already under way when the loop was taken.
    assert not [t for t in pings if blocked_from + 0.05 < t < blocked_until]
    before = [t for t in pings if t <= blocked_from]
    assert max(b - a for a, b in itertools.pairwise(before)) < 0.5
    assert notify_socket.statuses()[0].startswith("3 modules: light ")
    assert any(
        s.startswith("3 modules: light ") and "starting" not in s
        for s in notify_socket.statuses()
    )
    assert len(sensors) == 3
    assert all(sensor.closed for sensor in sensors)


async def test_dead_runner_stops_the_pings(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    """Test that a runner whose tasks died stops the pings after the grace."""
    sensors: list[RecordingSensor] = []
    agent = make_agent(
        tmp_path,
        notify_socket,
        sensors,
        # Not a SensorError: a bug, which kills the runner's tasks.
        fail_with=RuntimeError("driver bug"),
        restart_delay_s=3600,
        down_grace_s=0.3,
    )
    task = asyncio.create_task(agent.run())

    await notify_socket.wait_for("READY=1")
    await wait_until(lambda: "restarting" in agent.module_states().values())
    died_at = time.monotonic()
    await asyncio.sleep(1.5)
    statuses = notify_socket.statuses()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    pings = notify_socket.times_of("WATCHDOG=1")
    assert not [t for t in pings if t > died_at + 0.3 + 0.15]
    assert statuses[-1] == (
        "3 modules: light restarting, moisture restarting, temperature restarting"
    )


async def test_sigterm_stops_the_agent_cleanly(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    """Test that SIGTERM sends STOPPING, ends the agent and closes sensors."""
    sensors: list[RecordingSensor] = []
    agent = make_agent(tmp_path, notify_socket, sensors)
    run = asyncio.create_task(_until_signalled(agent.run(), on_signal=agent.stopping))
    await notify_socket.wait_for("READY=1")

    os.kill(os.getpid(), signal.SIGTERM)
    async with asyncio.timeout(WAIT_S):
        await run

    assert notify_socket.times_of("STOPPING=1")
    assert all(sensor.closed for sensor in sensors)
    assert (tmp_path / "state" / "outbox.sqlite3").exists()
