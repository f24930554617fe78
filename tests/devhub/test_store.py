from pathlib import Path

from devhub.store import Identity, RegistryEntry, Store, TelemetryRecord
from devhub.twins import new_twin

NOW = "2026-01-01T00:00:00.000Z"


def _entry(device_id: str, module_id: str | None = None) -> RegistryEntry:
    identity = Identity(device_id, module_id, "cA==", "cw==")
    return RegistryEntry(identity, "enabled", "1", NOW)


def test_sessions_and_subscriptions_survive_reopening(tmp_path: Path) -> None:
    """Test that a persistent session is resumed after a restart."""
    store = Store(tmp_path / "db")
    store.open_session("pi/light", clean=False)
    store.set_subscription("pi/light", "$iothub/twin/res/#", 1)
    store.close()

    reopened = Store(tmp_path / "db")

    assert reopened.open_session("pi/light", clean=False) is True
    assert reopened.subscriptions("pi/light") == {"$iothub/twin/res/#": 1}


def test_clean_session_clears_subscriptions(tmp_path: Path) -> None:
    """Test CleanSession=1 semantics."""
    store = Store(tmp_path / "db")
    store.open_session("c", clean=False)
    store.set_subscription("c", "f", 1)

    resumed = store.open_session("c", clean=True)

    assert (resumed, store.subscriptions("c")) == (False, {})


def test_telemetry_keeps_only_the_newest(tmp_path: Path) -> None:
    """Test the bound on stored telemetry, oldest dropped first."""
    store = Store(tmp_path / "db")
    for index in range(5):
        record = TelemetryRecord("pi", "light", NOW, str(index).encode(), {}, {})
        store.add_telemetry(record, keep=3)

    bodies = [r.body for r in store.telemetry("pi", "light", limit=10)]

    assert bodies == [b"2", b"3", b"4"]


def test_deleting_a_device_deletes_its_modules_and_twins(tmp_path: Path) -> None:
    """Test the registry cascade."""
    store = Store(tmp_path / "db")
    store.add_identity(_entry("pi"), new_twin(NOW))
    store.add_identity(_entry("pi", "light"), new_twin(NOW))

    store.delete_identity("pi", None)

    assert store.get_identity("pi", "light") is None
    assert store.load_twin("pi", "light") is None
