from pathlib import Path

from agent.state import ModuleState, StateStore
from agent.twinsync import TwinState


def test_saved_state_loads_back(tmp_path: Path) -> None:
    """Test that applied version, values and pending reports survive."""
    store = StateStore(tmp_path / "state")
    state = ModuleState(
        TwinState(12, {"unit": "F"}),
        {"unit": {"ac": 200}},
        [(11, "patch"), (12, "resync")],
    )

    store.save("temperature", state)

    assert store.load("temperature") == state


def test_missing_state_is_fresh(tmp_path: Path) -> None:
    """Test that a module without a file starts at version 0."""
    assert StateStore(tmp_path).load("light") == ModuleState()


def test_state_dir_is_private(tmp_path: Path) -> None:
    """Test that the state directory is created readable by the owner only."""
    StateStore(tmp_path / "state").save("light", ModuleState())

    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700


def test_corrupt_state_is_set_aside(tmp_path: Path) -> None:
    """Test that an unreadable file is renamed and the module starts fresh."""
    store = StateStore(tmp_path)
    store.path_for("light").write_text("{not json")

    assert store.load("light") == ModuleState()
    assert store.path_for("light").with_suffix(".corrupt").exists()
    assert not store.path_for("light").exists()


def test_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    """Test that the atomic replace cleans up after itself."""
    store = StateStore(tmp_path)

    store.save("light", ModuleState(TwinState(3, {})))

    assert sorted(p.name for p in tmp_path.iterdir()) == ["light.state.json"]
