"""Fault knobs: make the dev hub misbehave on purpose, for fault tests.

All knobs are off by default. Each counts down: set it to N and the next N
occasions misbehave, then the hub behaves again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Faults:
    """Counters of misbehaviour still to come.

    Attributes:
        drop_desired_notifications: Desired-patch notifications to drop
            (the twin still changes), as if the notification were lost.
        repeat_desired_notifications: Notifications to send twice, as a
            redelivery after a reconnect would.
    """

    drop_desired_notifications: int = 0
    repeat_desired_notifications: int = 0

    def take(self, knob: str) -> bool:
        """Use up one occurrence of ``knob``; return whether it fired."""
        left: int = getattr(self, knob)
        if left <= 0:
            return False
        setattr(self, knob, left - 1)
        return True
