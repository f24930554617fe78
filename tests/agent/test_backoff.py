import random

from agent.backoff import Backoff


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(clock: FakeMonotonic) -> Backoff:
    return Backoff(
        base_s=1.0,
        cap_s=60.0,
        stable_after_s=30.0,
        rng=random.Random(7),
        monotonic=clock,
    )


def test_delays_stay_under_a_doubling_ceiling_up_to_the_cap() -> None:
    """Test that each delay is drawn below a ceiling that doubles to the cap."""
    backoff = make(FakeMonotonic())
    ceilings = []
    for _ in range(10):
        ceilings.append(backoff.ceiling_s())
        assert 0.0 <= backoff.next_delay_s() <= ceilings[-1]

    assert ceilings == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]


def test_delays_are_jittered() -> None:
    """Test that delays at the cap are spread, not all equal."""
    backoff = make(FakeMonotonic())
    delays = {round(backoff.next_delay_s(), 6) for _ in range(20)}

    assert len(delays) == 20


def test_short_lived_link_does_not_reset_backoff() -> None:
    """Test that a link dropping before stable_after_s keeps the ceiling up."""
    clock = FakeMonotonic()
    backoff = make(clock)
    for _ in range(4):
        backoff.next_delay_s()

    backoff.link_up()
    clock.now += 5
    backoff.link_down()

    assert backoff.ceiling_s() == 16


def test_stable_link_resets_backoff() -> None:
    """Test that a link up for stable_after_s brings the ceiling back to base."""
    clock = FakeMonotonic()
    backoff = make(clock)
    for _ in range(4):
        backoff.next_delay_s()

    backoff.link_up()
    clock.now += 30
    backoff.link_down()

    assert backoff.ceiling_s() == 1
