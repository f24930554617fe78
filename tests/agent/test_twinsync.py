import json
from pathlib import Path
from typing import Any

import pytest

from agent.twin_wire import DesiredDocument, PropertyAck
from agent.twinsync import MAX_UNKNOWN_ACKS, Action, TwinState, TwinSync

FIXTURES = Path(__file__).parent / "fixtures"
BAD_CASES = json.loads((FIXTURES / "bad_desired.json").read_text())


def doc(version: int, **members: Any) -> DesiredDocument:
    return DesiredDocument(version, members)


@pytest.fixture
def light() -> TwinSync:
    return TwinSync("light", {"sample_interval_s": 30.0})


def test_effective_config_layers_defaults_local_and_desired(light: TwinSync) -> None:
    """Test that desired beats config, which beats the built-in default."""
    light.apply_full(doc(2, lux_change_to_report=5))

    assert light.effective == {
        "sample_interval_s": 30.0,
        "enabled": True,
        "lux_change_to_report": 5.0,
    }


def test_full_document_newer_is_applied_and_acked(light: TwinSync) -> None:
    """Test that a newer full document applies with 200 acks at its version."""
    outcome = light.apply_full(doc(4, sample_interval_s=10))

    assert outcome.action is Action.APPLIED
    assert outcome.changed == ("sample_interval_s",)
    assert outcome.acks == {"sample_interval_s": PropertyAck(10.0, 200, 4, "applied")}
    assert light.applied_version == 4


def test_full_document_same_version_changes_nothing(light: TwinSync) -> None:
    """Test that a document at the applied version is not applied again."""
    light.apply_full(doc(4, sample_interval_s=10))

    outcome = light.apply_full(doc(4, sample_interval_s=10))

    assert outcome.action is Action.UNCHANGED
    assert outcome.acks == {}


def test_full_document_older_means_recreated_twin(light: TwinSync) -> None:
    """Test that an older document is applied and flagged as a recreated twin."""
    light.apply_full(doc(9, sample_interval_s=10))

    outcome = light.apply_full(doc(2, sample_interval_s=20))

    assert outcome.action is Action.APPLIED
    assert outcome.recreated
    assert light.effective["sample_interval_s"] == 20.0
    assert light.applied_version == 2


def test_key_missing_from_full_document_goes_back_to_config(light: TwinSync) -> None:
    """Test that a key removed while offline falls back to config, then default."""
    light.apply_full(doc(2, sample_interval_s=10, lux_change_to_report=7))

    outcome = light.apply_full(doc(5))

    assert light.effective["sample_interval_s"] == 30.0
    assert light.effective["lux_change_to_report"] == 0.0
    assert outcome.acks["sample_interval_s"] == PropertyAck(
        30.0, 200, 5, "removed; back to default"
    )


def test_next_patch_merges_onto_applied_values(light: TwinSync) -> None:
    """Test that the patch at applied + 1 changes only the keys it carries."""
    light.apply_full(doc(3, sample_interval_s=10, lux_change_to_report=7))

    outcome = light.apply_patch(doc(4, lux_change_to_report=9))

    assert outcome.action is Action.APPLIED
    assert light.effective["sample_interval_s"] == 10.0
    assert light.effective["lux_change_to_report"] == 9.0
    assert set(outcome.acks) == {"lux_change_to_report"}


def test_patch_null_goes_back_to_default(light: TwinSync) -> None:
    """Test that null in a patch removes the desired value."""
    light.apply_full(doc(3, sample_interval_s=10))

    outcome = light.apply_patch(doc(4, sample_interval_s=None))

    assert light.effective["sample_interval_s"] == 30.0
    assert outcome.acks["sample_interval_s"].status == 200


@pytest.mark.parametrize("version", [1, 3], ids=["older", "same"])
def test_repeated_patch_is_ignored(light: TwinSync, version: int) -> None:
    """Test that a patch at or below the applied version is a duplicate."""
    light.apply_full(doc(3, sample_interval_s=10))

    outcome = light.apply_patch(doc(version, sample_interval_s=99))

    assert outcome.action is Action.DUPLICATE
    assert light.effective["sample_interval_s"] == 10.0


def test_patch_skipping_a_version_asks_for_resync(light: TwinSync) -> None:
    """Test that a gap in versions asks for a full resync and applies nothing."""
    light.apply_full(doc(3, sample_interval_s=10))

    outcome = light.apply_patch(doc(5, sample_interval_s=20))

    assert outcome.action is Action.RESYNC_NEEDED
    assert light.effective["sample_interval_s"] == 10.0
    assert light.applied_version == 3


def test_patch_before_first_sync_asks_for_resync(light: TwinSync) -> None:
    """Test that a patch arriving before any full document triggers a resync."""
    outcome = light.apply_patch(doc(2, sample_interval_s=20))

    assert outcome.action is Action.RESYNC_NEEDED


@pytest.mark.parametrize("case", BAD_CASES, ids=[c["id"] for c in BAD_CASES])
def test_bad_value_is_rejected_and_last_good_value_stays(case: dict[str, Any]) -> None:
    """Test that a bad value is acked 400 with a reason and changes nothing."""
    sync = TwinSync(case["kind"], {})
    sync.apply_full(doc(2, enabled=False, location="bed 1"))
    before = sync.effective

    good = ("enabled", True) if case["property"] != "enabled" else ("location", "b")
    members = {good[0]: good[1], **case["members"]}

    outcome = sync.apply_patch(DesiredDocument(3, members))

    ack = outcome.acks[case["property"]]
    assert (ack.status, ack.version, ack.description) == (400, 3, case["reason"])
    assert ack.value == before.get(case["property"])
    assert outcome.acks[good[0]].status == 200
    assert sync.effective == {**before, good[0]: good[1]}


def test_rejected_value_in_full_document_keeps_last_good(light: TwinSync) -> None:
    """Test that a resync with a bad value keeps the previously accepted one."""
    light.apply_full(doc(2, lux_change_to_report=5))

    outcome = light.apply_full(doc(3, lux_change_to_report=-1, sample_interval_s=12))

    assert light.effective["lux_change_to_report"] == 5.0
    assert light.effective["sample_interval_s"] == 12.0
    assert outcome.rejected == ("lux_change_to_report",)


def test_state_round_trip_resumes_at_applied_version() -> None:
    """Test that a sync built from saved state sees the same version as applied."""
    first = TwinSync("temperature", {})
    first.apply_full(doc(7, unit="F"))

    again = TwinSync("temperature", {}, first.state())

    assert again.apply_full(doc(7, unit="F")).action is Action.UNCHANGED
    assert again.effective["unit"] == "F"
    assert first.state() == TwinState(7, {"unit": "F"}, {"unit": "F"})


def test_initial_acks_cover_values_not_set_by_desired() -> None:
    """Test that config and default values are reported with status 203."""
    sync = TwinSync("moisture", {"sample_interval_s": 20.0})
    sync.apply_full(doc(2, enabled=False))

    acks = sync.initial_acks()

    assert acks == {
        "sample_interval_s": PropertyAck(20.0, 203, 0, "from config or default"),
        "dry_threshold_pct": PropertyAck(30.0, 203, 0, "from config or default"),
    }


def test_saved_state_with_bad_value_is_repaired_and_resynced() -> None:
    """Test that a saved value out of range is dropped and forces a full apply."""
    saved = TwinState(41, {"sample_interval_s": 0, "enabled": False})

    sync = TwinSync("moisture", {}, saved)

    assert sync.repaired == ("sample_interval_s",)
    assert sync.applied_version == 0
    assert sync.effective["sample_interval_s"] == 60.0
    assert sync.apply_full(doc(41)).action is Action.APPLIED


def test_null_for_unknown_key_clears_its_ack(light: TwinSync) -> None:
    """Test that removing an unknown key asks for its ack to be deleted."""
    light.apply_full(doc(2, colour="red"))

    outcome = light.apply_patch(doc(3, colour=None))

    assert outcome.cleared == ("colour",)
    assert outcome.acks == {}


def test_unknown_keys_acked_up_to_a_cap(light: TwinSync) -> None:
    """Test that a flood of unknown keys gets a bounded number of acks."""
    junk = {f"j{i}": i for i in range(MAX_UNKNOWN_ACKS + 5)}

    outcome = light.apply_full(DesiredDocument(2, {**junk, "sample_interval_s": 9}))

    assert len(outcome.rejected) == MAX_UNKNOWN_ACKS
    assert len(outcome.unacked) == 5
    assert outcome.acks["sample_interval_s"].status == 200


def test_recreated_twin_at_the_same_version_is_applied(light: TwinSync) -> None:
    """Test that a twin known to be new is applied even at an equal version."""
    light.apply_full(doc(2, sample_interval_s=30))

    outcome = light.apply_full(doc(2, sample_interval_s=10), recreated=True)

    assert outcome.action is Action.APPLIED
    assert outcome.recreated
    assert light.effective["sample_interval_s"] == 10.0


def test_same_version_with_other_content_is_a_recreated_twin(light: TwinSync) -> None:
    """Test that equal versions with different members are not taken as in sync."""
    light.apply_full(doc(2, sample_interval_s=30, colour="red"))
    light.apply_patch(doc(3, colour=None))

    same = light.apply_full(doc(3, sample_interval_s=30))
    other = light.apply_full(doc(3, sample_interval_s=10))

    assert same.action is Action.UNCHANGED
    assert other.action is Action.APPLIED
    assert other.recreated
