"""Twin sync: decide what a desired document or patch changes, by version.

Pure logic, no I/O: the module runner feeds it what the hub sent and
persists the :class:`TwinState` it returns. The rules (DESIGN.md, "Twin
sync"):

* full document newer than the applied version: apply it whole; keys it
  lacks fall back to config or default;
* same version: nothing to do; older: the twin was recreated, apply it;
* patch at applied + 1: merge it (null = back to default);
* patch at or below the applied version: a duplicate, ignore it;
* patch beyond applied + 1: one was missed, fetch the whole twin.

A refused value never replaces the last good one; the rest of the document
still applies.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.errors import DesiredRejected
from agent.properties import Property, Value, defaults_for, properties_for
from agent.twin_wire import DesiredDocument, PropertyAck

# Unknown keys acknowledged per document; more would only bloat the reported
# section (32 KB in all) with the same complaint.
MAX_UNKNOWN_ACKS = 10


class Action(enum.Enum):
    """What a desired document or patch led to."""

    APPLIED = "applied"
    UNCHANGED = "unchanged"
    DUPLICATE = "duplicate"
    RESYNC_NEEDED = "resync_needed"


@dataclass(slots=True)
class TwinState:
    """What must survive a restart: the applied version and accepted values.

    Attributes:
        applied_version: The last desired version applied; 0 before any.
        accepted: Desired values in effect, by property name.
        desired: The desired members as of that version (refused and unknown
            ones included), or ``None`` if not known.
    """

    applied_version: int = 0
    accepted: dict[str, Value] = field(default_factory=dict)
    desired: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """The result of one document or patch.

    Attributes:
        action: What happened.
        desired_version: The version of what was received.
        changed: Properties whose effective value changed.
        acks: One acknowledgement per property to report.
        recreated: The document was older than the applied one.
        cleared: Unknown keys removed from desired, whose acks should go.
        unacked: Unknown keys past the acknowledgement cap.
    """

    action: Action
    desired_version: int
    changed: tuple[str, ...] = ()
    acks: Mapping[str, PropertyAck] = field(default_factory=dict)
    recreated: bool = False
    cleared: tuple[str, ...] = ()
    unacked: tuple[str, ...] = ()

    @property
    def rejected(self) -> tuple[str, ...]:
        """Names of the properties acknowledged with an error."""
        return tuple(n for n, a in self.acks.items() if a.status >= 400)


class TwinSync:
    """Apply desired documents and patches to one module's properties.

    Args:
        kind: The module kind, which picks the writable properties.
        local: Property values from the config file (checked already).
        state: The persisted state to start from.
        check_sensor: Given the driver options that desired values would
            set, returns why the sensor refuses them, or ``None``.
    """

    def __init__(
        self,
        kind: str,
        local: Mapping[str, Value],
        state: TwinState | None = None,
        *,
        check_sensor: Callable[[dict[str, Value]], str | None] | None = None,
    ) -> None:
        self._check_sensor = check_sensor
        self._props = properties_for(kind)
        self._fallback: dict[str, Value] = {**defaults_for(kind), **local}
        self._state, self.repaired = self._checked(state or TwinState())

    @property
    def applied_version(self) -> int:
        """The last desired version applied (0 before the first sync)."""
        return self._state.applied_version

    def is_writable(self, name: str) -> bool:
        """Whether ``name`` is one of this module's writable properties."""
        return name in self._props

    @property
    def effective(self) -> dict[str, Value]:
        """Defaults, then config, then accepted desired values."""
        return {**self._fallback, **self._state.accepted}

    def sensor_overrides(
        self, accepted: Mapping[str, Value] | None = None
    ) -> dict[str, Value]:
        """Return the driver options the effective values set."""
        effective = {
            **self._fallback,
            **(self._state.accepted if accepted is None else accepted),
        }
        return {
            p.sensor_option: effective[p.name]
            for p in self._props.values()
            if p.sensor_option is not None and p.name in effective
        }

    def state(self) -> TwinState:
        """Return a copy of the state to persist."""
        desired = self._state.desired
        return TwinState(
            self._state.applied_version,
            dict(self._state.accepted),
            None if desired is None else dict(desired),
        )

    def initial_acks(self) -> dict[str, PropertyAck]:
        """Acks for properties no desired value has set (status 203)."""
        return {
            name: PropertyAck(value, 203, 0, "from config or default")
            for name, value in self._fallback.items()
            if name not in self._state.accepted
        }

    def apply_full(
        self, document: DesiredDocument, *, recreated: bool = False
    ) -> SyncOutcome:
        """Apply a whole desired document, as fetched with the twin.

        Args:
            document: The desired section of the twin.
            recreated: The caller knows the twin is a new one (its reported
                section lost everything), so even an equal version is news.
        """
        version = document.desired_version
        if version == self._state.applied_version and not recreated:
            known = self._state.desired
            if known is None or known == dict(document.members):
                return SyncOutcome(Action.UNCHANGED, version)
            # Same version, other content: a twin deleted and created again.
            recreated = True
        recreated = recreated or version < self._state.applied_version

        before = self.effective
        accepted = dict(self._state.accepted)
        acks, cleared, unacked = self._merge(accepted, document.members, version)
        for name in list(accepted):
            if name in document.members:
                continue
            prop = self._props.get(name)
            if name in self._fallback:
                del accepted[name]
                acks[name] = PropertyAck(
                    self._fallback[name], 200, version, "removed; back to default"
                )
            elif prop is not None and prop.sensor_option is not None:
                del accepted[name]
                acks[name] = PropertyAck(
                    None, 200, version, "removed; back to the sensor's config"
                )
        outcome = self._commit(
            accepted, acks, before, version, dict(document.members), recreated=recreated
        )
        return dataclasses.replace(outcome, cleared=cleared, unacked=unacked)

    def apply_patch(self, patch: DesiredDocument) -> SyncOutcome:
        """Apply a desired patch if it is the next one; otherwise say why not."""
        version = patch.desired_version
        applied = self._state.applied_version
        if applied == 0 or version > applied + 1:
            return SyncOutcome(Action.RESYNC_NEEDED, version)
        if version <= applied:
            return SyncOutcome(Action.DUPLICATE, version)

        before = self.effective
        accepted = dict(self._state.accepted)
        acks, cleared, unacked = self._merge(accepted, patch.members, version)
        desired = self._state.desired
        if desired is not None:
            desired = {**desired, **patch.members}
            desired = {k: v for k, v in desired.items() if v is not None}
        outcome = self._commit(
            accepted, acks, before, version, desired, recreated=False
        )
        return dataclasses.replace(outcome, cleared=cleared, unacked=unacked)

    def _merge(
        self,
        accepted: dict[str, Value],
        members: Mapping[str, Any],
        version: int,
    ) -> tuple[dict[str, PropertyAck], tuple[str, ...], tuple[str, ...]]:
        acks: dict[str, PropertyAck] = {}
        cleared: list[str] = []
        unacked: list[str] = []
        unknown_acks = 0
        for name, value in members.items():
            prop = self._props.get(name)
            if prop is None and value is None:
                cleared.append(name)
            elif prop is None and unknown_acks >= MAX_UNKNOWN_ACKS:
                unacked.append(name)
            elif prop is None:
                unknown_acks += 1
                acks[name] = PropertyAck(None, 400, version, self._unknown(name))
            elif value is None:
                acks[name] = self._remove(prop, accepted, version)
            else:
                acks[name] = self._set(prop, value, accepted, version)
        return acks, tuple(cleared), tuple(unacked)

    def _set(
        self,
        prop: Property,
        value: object,
        accepted: dict[str, Value],
        version: int,
    ) -> PropertyAck:
        current = accepted.get(prop.name, self._fallback.get(prop.name))
        try:
            checked = prop.check(value)
            self._check_with_sensor(prop, {**accepted, prop.name: checked})
        except DesiredRejected as err:
            return PropertyAck(current, err.status, version, err.reason)
        accepted[prop.name] = checked
        return PropertyAck(checked, 200, version, "applied")

    def _check_with_sensor(self, prop: Property, accepted: Mapping[str, Value]) -> None:
        if prop.sensor_option is None or self._check_sensor is None:
            return
        refusal = self._check_sensor(self.sensor_overrides(accepted))
        if refusal is not None:
            raise DesiredRejected(prop.name, f"the sensor refuses it: {refusal}")

    def _remove(
        self,
        prop: Property,
        accepted: dict[str, Value],
        version: int,
    ) -> PropertyAck:
        if prop.name not in self._fallback and prop.sensor_option is not None:
            accepted.pop(prop.name, None)
            return PropertyAck(
                None, 200, version, "removed; back to the sensor's config"
            )
        if prop.name not in self._fallback:
            current = accepted.get(prop.name)
            reason = f"{prop.name!r} has no default to go back to; send a value instead"
            return PropertyAck(current, 400, version, reason)
        accepted.pop(prop.name, None)
        default = self._fallback[prop.name]
        return PropertyAck(default, 200, version, "removed; back to default")

    def _commit(
        self,
        accepted: dict[str, Value],
        acks: dict[str, PropertyAck],
        before: Mapping[str, Value],
        version: int,
        desired: dict[str, Any] | None,
        *,
        recreated: bool,
    ) -> SyncOutcome:
        self._state = TwinState(version, accepted, desired)
        after = self.effective
        keys = sorted(set(before) | set(after))
        changed = tuple(k for k in keys if before.get(k) != after.get(k))
        return SyncOutcome(Action.APPLIED, version, changed, acks, recreated)

    def _checked(self, state: TwinState) -> tuple[TwinState, tuple[str, ...]]:
        """Drop saved values that are no longer allowed.

        A saved state is only trusted whole: if any value fails today's
        checks (a hand-edited file, a range tightened by an upgrade), the
        applied version is forgotten so the next connect applies the twin's
        desired document afresh.
        """
        accepted: dict[str, Value] = {}
        bad: list[str] = []
        for name, value in state.accepted.items():
            prop = self._props.get(name)
            try:
                if prop is None:
                    raise DesiredRejected(name, "not a writable property")
                accepted[name] = prop.check(value)
            except DesiredRejected:
                bad.append(name)
        if not bad:
            return state, ()
        return TwinState(0, accepted, state.desired), tuple(bad)

    def _unknown(self, name: str) -> str:
        known = ", ".join(sorted(self._props))
        return f"unknown property {name!r}; writable properties are {known}"
