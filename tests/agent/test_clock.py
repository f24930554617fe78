"""Tests for agent/clock.py: no SAS token before the clock is plausible."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent import hubclient
from agent.clock import BUILD_DATE, utc_now, wait_for_plausible_clock
from agent.config import AgentConfig, LinkConfig, ModuleConfig
from agent.notify import Notifier
from agent.supervisor import Agent
from devhub.hub import DevHub

DEVICE_ID = "pi-clock"
MODULES = ("light", "moisture")
LONG_AGO = dt.datetime(1970, 1, 1, 0, 0, 42, tzinfo=dt.UTC)
WAIT_S = 60.0
_SUBNET = 100 + os.getpid() % 100


class FakeWallClock:
    """A wall clock that a test sets by hand; sleeping costs no time."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at
        self.sleeps: list[float] = []

    def now(self) -> dt.datetime:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        # Real time passes too, a little, so other tasks get to run.
        await asyncio.sleep(0.01)


async def test_plausible_clock_returns_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Test that a right clock costs no wait and no log line."""
    clock = FakeWallClock(BUILD_DATE + dt.timedelta(days=3))

    await wait_for_plausible_clock(now=clock.now, sleep=clock.sleep)

    assert clock.sleeps == []
    assert caplog.records == []


async def test_clock_in_the_past_waits_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Test that a 1970 clock is waited out, with one line before and after."""
    caplog.set_level(logging.INFO, logger="agent.clock")
    clock = FakeWallClock(LONG_AGO)
    waiting = asyncio.create_task(
        wait_for_plausible_clock(now=clock.now, sleep=clock.sleep, poll_s=5)
    )

    await wait_until(lambda: len(clock.sleeps) >= 10)
    assert not waiting.done()
    clock.at = BUILD_DATE + dt.timedelta(hours=1)
    async with asyncio.timeout(5):
        await waiting

    assert set(clock.sleeps) == {5}
    assert [r.getMessage() for r in caplog.records] == [
        "clock not plausible, waiting before minting SAS tokens "
        "now=1970-01-01T00:00:42+00:00 not_before=2026-12-01; "
        "check NTP (timedatectl status)",
        "clock plausible now=2026-12-01T01:00:00+00:00",
    ]
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]


def test_build_date_is_not_in_the_future() -> None:
    """Test that BUILD_DATE never makes a right clock look wrong."""
    assert utc_now() >= BUILD_DATE


# -- with the agent and a dev hub ------------------------------------------------


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[DevHub]:
    """A dev hub on its own loopback address whose clock a test may shift."""
    offset_s = [0.0]
    host = f"127.{_SUBNET}.7.{os.getpid() % 200 + 2}"
    dev_hub = DevHub(
        tmp_path / "hub", host=host, clock=lambda: time.time() + offset_s[0]
    )
    dev_hub.clock_offset_s = offset_s  # type: ignore[attr-defined]
    await dev_hub.start()
    dev_hub.add_device(DEVICE_ID)
    for module_id in MODULES:
        dev_hub.add_module(DEVICE_ID, module_id)
    yield dev_hub
    await dev_hub.stop()


def hub_agent(hub: DevHub, state_dir: Path) -> Agent:
    modules = {
        name: ModuleConfig(
            module_id=name,
            kind=name,
            driver=f"simulated-{name}",
            sensor={"seed": 2},
            properties={},
            key=hub.get_identity(DEVICE_ID, name).primary_key,
        )
        for name in MODULES
    }
    config = AgentConfig(
        device_id=DEVICE_ID,
        hub_hostname=hub.hostname,
        gateway_host=hub.host,
        ca_pem=hub.ca_pem,
        state_dir=state_dir,
        modules=modules,
        link=LinkConfig(backoff_base_s=0.2, backoff_cap_s=0.5, call_timeout_s=10),
    )
    return Agent(config, notifier=Notifier(environ={}))


async def wait_until(condition: Callable[[], bool], *, step_s: float = 0.02) -> None:
    for _ in range(int(WAIT_S / step_s)):
        if condition():
            return
        await asyncio.sleep(step_s)
    pytest.fail(f"not true within {WAIT_S:g}s")


def all_connected(agent: Agent) -> bool:
    return set(agent.module_states().values()) == {"connected"}


async def test_agent_waits_for_the_clock_then_connects(
    hub: DevHub,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Test that with a 1970 clock no client is built until NTP sets it."""
    caplog.set_level(logging.INFO)
    clock = FakeWallClock(LONG_AGO)
    gate = functools.partial(wait_for_plausible_clock, now=clock.now, sleep=clock.sleep)
    monkeypatch.setattr(hubclient, "wait_for_plausible_clock", gate)
    agent = hub_agent(hub, tmp_path / "state")
    task = asyncio.create_task(agent.run())

    await wait_until(lambda: len(clock.sleeps) >= 20)
    states_while_wrong = agent.module_states()
    clients_while_wrong = hub.connected_clients()
    clock.at = utc_now()
    await wait_until(lambda: all_connected(agent))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert states_while_wrong == {"light": "connecting", "moisture": "connecting"}
    assert clients_while_wrong == set()
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if m.startswith("clock not plausible")]) == 2
    assert len([m for m in messages if m.startswith("module started")]) == 2
    assert not [m for m in messages if m.startswith("module crashed")]


async def test_token_refused_after_clock_step_is_minted_again(
    hub: DevHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Test that a client refused for an expired token is rebuilt and gets in.

    The hub's clock runs two hours ahead, as if the Pi had minted its tokens
    before NTP stepped its clock forward; then the clocks agree again.
    """
    caplog.set_level(logging.INFO)
    hub.clock_offset_s[0] = 7200.0  # type: ignore[attr-defined]
    agent = hub_agent(hub, tmp_path / "state")
    task = asyncio.create_task(agent.run())

    await wait_until(
        lambda: any(
            r.getMessage().startswith("connection refused module=light")
            for r in caplog.records
        )
    )
    hub.clock_offset_s[0] = 0.0  # type: ignore[attr-defined]
    await wait_until(
        lambda: any(
            r.getMessage().startswith("connected again module=light")
            for r in caplog.records
        )
    )
    await wait_until(lambda: all_connected(agent))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if m.startswith("module started")]) == 2
    assert [m for m in messages if m.startswith("connected again module=light")]
