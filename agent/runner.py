"""One module runner: its sensor, its sampling loop, its link and twin sync.

Two tasks per module, ``<module>.sample`` and ``<module>.link``. The sampler
reads the sensor on the interval in effect and queues telemetry; the link
task connects with backoff, resyncs the twin on every connect, applies
desired patches in version order, and sends what is queued (reported
properties coalesced, then telemetry).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from agent.backoff import Backoff
from agent.config import AgentConfig, ModuleConfig
from agent.errors import (
    AuthRefused,
    HubRefused,
    LinkError,
    LinkTimeout,
    SensorMisconfigured,
    StorageError,
    TwinError,
)
from agent.hubclient import MethodCall, ModuleLink
from agent.methods import MethodAnswers
from agent.outbox import Outbox
from agent.readings import ReadingShaper
from agent.reported import ReportedProperties, is_ack
from agent.sensorkeeper import SensorBuilder, SensorKeeper
from agent.state import ModuleState, StateStore
from agent.telemetry import TelemetrySender
from agent.twin_wire import (
    PropertyAck,
    desired_from_twin,
    encode_ack,
    encode_acks,
    parse_desired,
)
from agent.twinsync import Action, SyncOutcome, TwinSync
from sensors.base import Sensor

_LOGGER = logging.getLogger(__name__)
_READINGS = logging.getLogger("agent.readings")

# Applied desired versions kept in the state file, for operators and tests.
HISTORY_LENGTH = 50


class ModuleRunner:
    """Runs one module identity until cancelled.

    Args:
        config: The agent config (hub, device, link settings).
        module: This module's config.
        sensor: The sensor behind the module, not yet opened.
        store: Where module state is persisted.
        outbox: Where readings wait for the hub.
        build_sensor: Builds the module's sensor from driver options, so
            desired properties can change its settings.
        monotonic: Clock for sampling intervals.
    """

    def __init__(
        self,
        config: AgentConfig,
        module: ModuleConfig,
        *,
        sensor: Sensor,
        store: StateStore,
        outbox: Outbox,
        build_sensor: SensorBuilder | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._module = module
        self._name = module.module_id
        self._keeper = SensorKeeper(
            module.module_id,
            module.driver,
            sensor,
            build=build_sensor,
            options=module.sensor,
            report=self._report,
        )
        self._store = store
        self._methods = MethodAnswers(
            module.module_id, self._keeper, describe=self._describe
        )
        self._monotonic = monotonic
        self._sync = TwinSync(module.kind, module.properties)
        self._shaper = ReadingShaper(module.kind)
        self._outbox = outbox
        self._telemetry = TelemetrySender(
            module.module_id,
            outbox,
            max_latency_s=config.outbox.max_latency_s,
            report=self._report,
            monotonic=monotonic,
        )
        self._reported = ReportedProperties()
        self._history: collections.deque[tuple[int, str]] = collections.deque(
            maxlen=HISTORY_LENGTH
        )
        self._wake = asyncio.Event()
        self._config_changed = asyncio.Event()
        self._tasks: asyncio.TaskGroup | None = None
        self._outage: str | None = None
        self._storage_failures = 0
        self._auth_refused = False
        self._resync_pending = False
        self._reported_floor = 0
        # Supervisor hooks (read-only; see "supervisor hooks" below).
        self.started = asyncio.Event()
        self._loops: tuple[asyncio.Task[None], ...] = ()
        self._link: ModuleLink | None = None
        link = config.link
        self._backoff = Backoff(
            base_s=link.backoff_base_s,
            cap_s=link.backoff_cap_s,
            stable_after_s=link.stable_after_s,
        )

    async def run(self) -> None:
        """Run the module until cancelled; sensor trouble only degrades it."""
        state = await asyncio.to_thread(self._store.load, self._name)
        self._sync = TwinSync(
            self._module.kind,
            self._module.properties,
            state.twin,
            check_sensor=self._sensor_refusal,
        )
        if self._sync.repaired:
            _LOGGER.warning(
                "state file held values no longer allowed, resyncing from the twin "
                "module=%s properties=%s",
                self._name,
                ",".join(self._sync.repaired),
            )
        self._reported = ReportedProperties(state.reported, state.pending_reported)
        self._report_initial_acks()
        self._history.extend(state.history)
        self._reported_floor = state.reported_floor
        await self._apply_sensor_settings()
        _LOGGER.info(
            "module started module=%s kind=%s driver=%s applied_version=%d",
            self._name,
            self._module.kind,
            self._module.driver,
            self._sync.applied_version,
        )
        link = ModuleLink(
            self._config.connection_string(self._module),
            ca_pem=self._config.ca_pem,
            call_timeout_s=self._config.link.call_timeout_s,
            keep_alive_s=self._config.link.keep_alive_s,
            wake=self._wake,
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                self._loops = (
                    tasks.create_task(self._sample_loop(), name=f"{self._name}.sample"),
                    tasks.create_task(self._link_loop(link), name=f"{self._name}.link"),
                )
                self._link = link
                self.started.set()
        finally:
            await link.close()
            await self._keeper.close()

    # -- supervisor hooks (read-only) -----------------------------------------

    @property
    def alive(self) -> bool:
        """Whether the runner has started and its two loops still run."""
        return self.started.is_set() and not any(t.done() for t in self._loops)

    @property
    def status(self) -> str:
        """One word for the service status line.

        ``degraded`` (the sensor fails), ``connected``, ``offline`` (a connect
        failed; retrying with backoff) or ``connecting`` (first attempt).
        """
        if self._keeper.state == "degraded":
            return "degraded"
        if self._link is not None and self._link.connected:
            return "connected"
        return "offline" if self._outage is not None else "connecting"

    # -- link -------------------------------------------------------------

    async def _link_loop(self, link: ModuleLink) -> None:
        in_sync = False
        while True:
            if not link.connected:
                try:
                    await link.connect()
                except LinkError as err:
                    if isinstance(err, AuthRefused | LinkTimeout):
                        # A refused client is done for in the SDK, and one
                        # that gets no answer may be wedged: start afresh.
                        await link.rebuild()
                    await self._wait_before_retry(err)
                    continue
                self._backoff.link_up()
                self._link_up()
                in_sync = False
            try:
                # A resync that failed half-way (say a 429 on the GET after
                # a version gap) is done again; a refused reported patch
                # alone needs none.
                if not in_sync or self._resync_pending:
                    await self._resync(link)
                    in_sync = True
                await self._serve(link)
            except TwinError as err:
                # Throttled or refused (HubRefused), or a malformed twin: the
                # link itself is fine, so retry later on the same client.
                await self._wait_after_refusal(err)
            except LinkError as err:
                self._backoff.link_down()
                if link.connected:
                    # A call failed while the SDK claims a connection: the
                    # client may be wedged, so start again with a new one.
                    await link.rebuild()
                await self._wait_before_retry(err)

    async def _serve(self, link: ModuleLink) -> None:
        while True:
            self._wake.clear()
            if not link.connected:
                raise LinkError("connection lost")
            for call in link.take_methods():
                self._start_answer(link, call)
            for patch in link.take_patches():
                await self._on_patch(link, patch)
            await self._flush_reported(link)
            due_s = await self._telemetry.send_due(link)
            if not link.has_patches():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(due_s):
                        await self._wake.wait()

    async def _wait_after_refusal(self, err: TwinError) -> None:
        delay_s = self._backoff.next_delay_s()
        _LOGGER.warning(
            "hub refused a request, retrying module=%s cause=%s retry_in_s=%.1f",
            self._name,
            err,
            delay_s,
        )
        await asyncio.sleep(delay_s)

    async def _wait_before_retry(self, err: Exception) -> None:
        # One line per outage (an auth refusal gets its own ERROR line, as a
        # person must act); what happens while it lasts goes to DEBUG.
        delay_s = self._backoff.next_delay_s()
        cause = str(err)
        if isinstance(err, AuthRefused) and not self._auth_refused:
            self._auth_refused = True
            _LOGGER.error(
                "connection refused module=%s cause=%s; check the module's key in "
                "[modules.%s] and that the identity exists in the hub",
                self._name,
                cause,
                self._name,
            )
        elif self._outage is None:
            _LOGGER.warning(
                "link down module=%s cause=%s retry_in_s=%.1f",
                self._name,
                cause,
                delay_s,
            )
        else:
            _LOGGER.debug(
                "still down module=%s cause=%s retry_in_s=%.1f",
                self._name,
                cause,
                delay_s,
            )
        self._outage = cause
        await asyncio.sleep(delay_s)

    def _link_up(self) -> None:
        self._auth_refused = False
        if self._outage is None:
            _LOGGER.info("connected module=%s", self._name)
        else:
            _LOGGER.info(
                "connected again module=%s failures=%d",
                self._name,
                self._backoff.failures,
            )
        self._outage = None

    # -- twin sync --------------------------------------------------------

    async def _resync(self, link: ModuleLink) -> None:
        self._resync_pending = True
        twin = await link.get_twin()
        desired = desired_from_twin(twin)
        reported = twin.get("reported")
        reported = reported if isinstance(reported, dict) else {}
        outcome = self._sync.apply_full(desired, recreated=self._recreated(reported))
        if outcome.action is Action.UNCHANGED:
            _LOGGER.info(
                "twin in sync module=%s desired_version=%d",
                self._name,
                outcome.desired_version,
            )
        else:
            await self._applied(outcome, source="resync")
            self._clear_stale_acks(desired.members, desired.desired_version)
        self._reported.reconcile(reported)
        self._resync_pending = False

    async def _on_patch(self, link: ModuleLink, raw: dict[str, Any]) -> None:
        try:
            patch = parse_desired(raw)
        except TwinError as err:
            _LOGGER.warning(
                "desired patch unusable module=%s error=%s", self._name, err
            )
            await self._resync(link)
            return
        outcome = self._sync.apply_patch(patch)
        if outcome.action is Action.RESYNC_NEEDED:
            _LOGGER.info(
                "desired patch out of sequence, resyncing module=%s "
                "desired_version=%d applied_version=%d",
                self._name,
                patch.desired_version,
                self._sync.applied_version,
            )
            await self._resync(link)
        elif outcome.action is Action.DUPLICATE:
            _LOGGER.debug(
                "desired patch already applied module=%s desired_version=%d",
                self._name,
                patch.desired_version,
            )
        else:
            await self._applied(outcome, source="patch")

    async def _applied(self, outcome: SyncOutcome, *, source: str) -> None:
        self._reported.set(encode_acks(outcome.acks))
        self._reported.set(dict.fromkeys(outcome.cleared))
        self._history.append((outcome.desired_version, source))
        await self._save()
        if outcome.recreated:
            _LOGGER.warning(
                "desired version went back, twin was recreated module=%s "
                "desired_version=%d",
                self._name,
                outcome.desired_version,
            )
        _LOGGER.info(
            "desired applied module=%s desired_version=%d source=%s changed=%s "
            "rejected=%s",
            self._name,
            outcome.desired_version,
            source,
            ",".join(outcome.changed) or "-",
            ",".join(outcome.rejected) or "-",
        )
        for name in outcome.rejected:
            _LOGGER.warning(
                "desired value rejected module=%s property=%s reason=%s",
                self._name,
                name,
                outcome.acks[name].description,
            )
        if outcome.unacked:
            _LOGGER.warning(
                "unknown desired keys not acknowledged module=%s count=%d first=%s",
                self._name,
                len(outcome.unacked),
                outcome.unacked[0],
            )
        await self._apply_sensor_settings()
        self._config_changed.set()

    def _sensor_refusal(self, overrides: dict[str, Any]) -> str | None:
        try:
            self._keeper.check(overrides)
        except SensorMisconfigured as err:
            return str(err)
        return None

    async def _apply_sensor_settings(self) -> None:
        try:
            await self._keeper.apply(self._sync.sensor_overrides())
        except SensorMisconfigured as err:
            # Checked before acceptance, so only a driver that changed its
            # mind gets here; keep the sensor as it is.
            _LOGGER.error(
                "sensor settings not applied module=%s error=%s", self._name, err
            )

    def _report_initial_acks(self) -> None:
        # Config values may have changed since the last run; a 400 ack is
        # kept, since it tells the operator about a desired value.
        wanted = self._reported.wanted
        self._reported.set(
            {
                name: ack
                for name, ack in encode_acks(self._sync.initial_acks()).items()
                if wanted.get(name, {}).get("ac", 203) == 203
            }
        )

    def _recreated(self, reported: Mapping[str, Any]) -> bool:
        """Tell a twin deleted and created again, even at an equal version.

        Reported ``$version`` only grows on one twin, by one per accepted
        patch; a fetched twin below what this module has seen and sent is a
        new one. So is one that holds none of what the module reported.
        """
        version = reported.get("$version")
        floor = self._reported_floor
        if isinstance(version, int):
            self._reported_floor = version
        if self._sync.applied_version == 0:
            return False
        wanted = self._reported.wanted
        below = isinstance(version, int) and version < floor
        forgotten = bool(wanted) and not any(name in reported for name in wanted)
        return below or forgotten

    def _clear_stale_acks(self, members: Mapping[str, Any], version: int) -> None:
        """Retire acks of keys the desired document no longer holds.

        An unknown key's ack is deleted; a refused value's 400 becomes a 200
        for the value in effect, as the refused value is gone.
        """
        effective = self._sync.effective
        patch: dict[str, Any] = {}
        for name, value in self._reported.wanted.items():
            if not is_ack(value) or name in members:
                continue
            if not self._sync.is_writable(name):
                patch[name] = None
            elif value.get("ac") == 400:
                ack = PropertyAck(
                    effective.get(name), 200, version, "removed; back to default"
                )
                patch[name] = encode_ack(ack)
        self._reported.set(patch)

    async def _flush_reported(self, link: ModuleLink) -> None:
        sending = self._reported.pending
        if not sending:
            return
        refused = await self._send_reported(link, sending)
        if refused:
            _LOGGER.error(
                "reported properties refused by the hub, not reported module=%s "
                "keys=%s",
                self._name,
                ",".join(sorted(refused)),
            )
            self._reported.give_up(refused)
        self._reported.sent(sending)
        await self._save()

    async def _send_reported(
        self, link: ModuleLink, patch: Mapping[str, Any]
    ) -> list[str]:
        """Send a patch; on a 4xx refusal, halve it to find the keys at fault."""
        try:
            await link.patch_reported(patch)
        except HubRefused as err:
            if err.status == 429 or err.status >= 500:
                raise
        else:
            self._reported_floor += 1
            return []
        if len(patch) == 1:
            return list(patch)
        items = list(patch.items())
        half = len(items) // 2
        first = await self._send_reported(link, dict(items[:half]))
        return first + await self._send_reported(link, dict(items[half:]))

    async def _save(self) -> None:
        state = ModuleState(
            self._sync.state(),
            self._reported.pending,
            list(self._history),
            self._reported.wanted,
            self._reported_floor,
        )
        try:
            await asyncio.to_thread(self._store.save, self._name, state)
        except OSError as err:
            # The twin holds the truth; a later save (or a resync after a
            # restart) catches up.
            self._storage_trouble(
                StorageError(f"state file: {err}"), "state kept in memory"
            )
        else:
            self._storage_fine()

    def _storage_trouble(self, err: StorageError, effect: str) -> None:
        self._storage_failures += 1
        if self._storage_failures == 1:
            _LOGGER.warning(
                "state directory failing, %s module=%s error=%s",
                effect,
                self._name,
                err,
            )

    def _storage_fine(self) -> None:
        if self._storage_failures:
            _LOGGER.info(
                "state directory works again module=%s failures=%d",
                self._name,
                self._storage_failures,
            )
            self._storage_failures = 0

    def _report(self, patch: Mapping[str, Any]) -> None:
        self._reported.set(patch)
        self._wake.set()

    # -- direct methods ---------------------------------------------------

    def _start_answer(self, link: ModuleLink, call: MethodCall) -> None:
        # Answered in their own task: a slow sensor read must not hold up
        # desired patches or other calls.
        assert self._tasks is not None
        self._tasks.create_task(
            self._methods.answer(link, call), name=f"{self._name}.method.{call.name}"
        )

    def _describe(self) -> dict[str, Any]:
        """The ``get_config`` answer: what is in effect and why."""
        return {
            "module": self._name,
            "kind": self._module.kind,
            "driver": self._module.driver,
            "applied_version": self._sync.applied_version,
            "effective": self._sync.effective,
            "sensor": self._keeper.summary(),
            "history": [list(entry) for entry in self._history],
        }

    # -- sampling ---------------------------------------------------------

    async def _sample_loop(self) -> None:
        last_read = -float("inf")
        while True:
            self._config_changed.clear()
            effective = self._sync.effective
            interval_s = self._keeper.retry_delay_s(
                float(effective["sample_interval_s"])
            )
            remaining_s = last_read + interval_s - self._monotonic()
            if remaining_s > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining_s):
                        await self._config_changed.wait()
                continue
            last_read = self._monotonic()
            if effective["enabled"]:
                await self._read_once(effective)
            else:
                self._keeper.disabled()

    async def _read_once(self, effective: Mapping[str, Any]) -> None:
        reading = await self._keeper.sample()
        if reading is None:
            return
        fields = self._shaper.shape(reading, effective)
        if fields is None:
            _READINGS.debug("reading skipped module=%s", self._name)
            return
        try:
            seq = await asyncio.to_thread(
                self._outbox.append,
                self._name,
                fields,
                taken_at=reading.taken_at.timestamp(),
            )
        except StorageError as err:
            self._storage_trouble(err, "reading dropped")
            self._telemetry.unstored()
            return
        self._storage_fine()
        _READINGS.debug(
            "reading module=%s seq=%d %s",
            self._name,
            seq,
            " ".join(f"{k}={v}" for k, v in fields.items() if k != "taken_at"),
        )
        self._wake.set()
