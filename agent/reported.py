"""Reported properties: what a module wants them to say, and what is unsent.

The module keeps the whole picture it owns (one acknowledgement per desired
key, the sensor state, the outbox figures) and a buffer of changes not yet
acknowledged by the hub. Changes made while offline merge in the buffer and
go out once. After each twin GET the picture is compared with what the hub
holds, so anything lost (a recreated twin, a refused patch, a crash between
applying and reporting) is sent again, and acknowledgements nobody owns any
more are deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def is_ack(value: object) -> bool:
    """Whether a reported value is a writable-property acknowledgement."""
    return isinstance(value, dict) and "ac" in value


class ReportedProperties:
    """The reported properties one module owns.

    Args:
        wanted: What the reported properties should say, by key.
        pending: Changes not yet acknowledged by the hub (``None`` deletes).
    """

    def __init__(
        self,
        wanted: Mapping[str, Any] | None = None,
        pending: Mapping[str, Any] | None = None,
    ) -> None:
        self._wanted: dict[str, Any] = dict(wanted or {})
        self._pending: dict[str, Any] = dict(pending or {})

    @property
    def wanted(self) -> dict[str, Any]:
        """A copy of what the reported properties should say."""
        return dict(self._wanted)

    @property
    def pending(self) -> dict[str, Any]:
        """A copy of the changes still to send."""
        return dict(self._pending)

    def set(self, patch: Mapping[str, Any]) -> None:
        """Record changes to report; ``None`` deletes a key."""
        for name, value in patch.items():
            if value is None:
                self._wanted.pop(name, None)
            else:
                self._wanted[name] = value
            self._pending[name] = value

    def reconcile(self, reported: Mapping[str, Any]) -> None:
        """Queue whatever differs from what the hub holds.

        Args:
            reported: The reported section of a freshly fetched twin.
        """
        stale = [
            name
            for name, value in reported.items()
            if is_ack(value) and name not in self._wanted
        ]
        self._pending = {
            name: value
            for name, value in self._wanted.items()
            if reported.get(name) != value
        }
        self._pending.update(dict.fromkeys(stale))

    def sent(self, patch: Mapping[str, Any]) -> None:
        """Forget changes the hub acknowledged, unless they changed since."""
        for name, value in patch.items():
            if name in self._pending and self._pending[name] == value:
                del self._pending[name]

    def give_up(self, names: Iterable[str]) -> None:
        """Stop reporting keys the hub refuses to store."""
        for name in names:
            self._wanted.pop(name, None)
            self._pending.pop(name, None)
