"""Fault knobs: make the dev hub misbehave on purpose, for fault tests.

All knobs are off by default. Counters count down: set one to N and the next
N occasions misbehave, then the hub behaves again. Shares (0.0 to 1.0) pick
a fraction of occasions with a seeded generator, so a run with the same
``seed`` and the same traffic misbehaves on the same requests.

Throttling, as IoT Hub does it over MQTT 3.1.1 (reference §9.3 and §2.4):

- Twin GET and reported PATCH have a response topic with a status, so a
  throttled request is answered ``429`` (error 429001) and not applied.
- Telemetry has no response but its PUBACK, and MQTT 3.1.1 cannot put an
  error in a PUBACK. IoT Hub first delays (traffic shaping), then refuses;
  over MQTT a refusal closes the connection, as it does on its other errors.
  Withholding the PUBACK on a live connection instead would wedge the device
  SDK, which waits for a PUBACK with no timeout (reference §4.4). So a
  throttled message is not stored, gets no PUBACK, and its connection is
  closed; the client re-sends it (DUP=1) after reconnecting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Faults:
    """Misbehaviour still to come, and shares of requests to refuse.

    Attributes:
        drop_desired_notifications: Desired-patch notifications to drop
            (the twin still changes), as if the notification were lost.
        repeat_desired_notifications: Notifications to send twice, as a
            redelivery after a reconnect would.
        twin_throttle_share: Share of twin GETs and reported PATCHes
            answered 429 without being applied.
        telemetry_throttle_share: Share of telemetry messages refused by
            closing the connection before their PUBACK.
        drop_twin_responses: Twin responses to drop (the request is still
            applied), as if the response were lost.
        twin_response_delay_s: Delay before each twin response is sent.
        close_after_connack: Connections to close right after their
            CONNACK, as a hub failing over would.
        seed: Seed of the generator that picks the shares.
    """

    drop_desired_notifications: int = 0
    repeat_desired_notifications: int = 0
    twin_throttle_share: float = 0.0
    telemetry_throttle_share: float = 0.0
    drop_twin_responses: int = 0
    twin_response_delay_s: float = 0.0
    close_after_connack: int = 0
    seed: int = 0
    _random: random.Random = field(init=False, repr=False, compare=False)
    _seeded_with: int | None = field(default=None, init=False, repr=False)

    def take(self, knob: str) -> bool:
        """Use up one occurrence of counter ``knob``; return whether it fired."""
        left: int = getattr(self, knob)
        if left <= 0:
            return False
        setattr(self, knob, left - 1)
        return True

    def roll(self, share_knob: str) -> bool:
        """Return True for the seeded share ``share_knob`` of occasions."""
        share: float = getattr(self, share_knob)
        if share <= 0:
            return False
        if self._seeded_with != self.seed:
            # A new seed restarts the sequence, so a test can replay it.
            self._random = random.Random(self.seed)
            self._seeded_with = self.seed
        return self._random.random() < share
