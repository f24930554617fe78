import datetime as dt

from agent.properties import defaults_for
from agent.readings import ReadingShaper
from sensors.base import Reading

AT = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)


def test_temperature_in_fahrenheit_with_offset() -> None:
    """Test that unit F and the offset change the sent temperature."""
    effective = {**defaults_for("temperature"), "unit": "F", "offset_c": -1.0}
    shaper = ReadingShaper("temperature")

    fields = shaper.shape(
        Reading({"temperature_c": 21.0, "humidity_pct": 40.0}, AT), effective
    )

    assert fields == {
        "taken_at": "2026-05-01T12:00:00.000+00:00",
        "temperature_f": 68.0,
        "humidity_pct": 40.0,
    }


def test_small_light_changes_are_skipped() -> None:
    """Test that a change under lux_change_to_report sends nothing."""
    effective = {**defaults_for("light"), "lux_change_to_report": 50.0}
    shaper = ReadingShaper("light")

    first = shaper.shape(Reading({"illuminance_lux": 400.0}, AT), effective)
    small = shaper.shape(Reading({"illuminance_lux": 430.0}, AT), effective)
    large = shaper.shape(Reading({"illuminance_lux": 460.0}, AT), effective)

    assert first is not None
    assert large is not None
    assert small is None


def test_moisture_below_threshold_is_dry() -> None:
    """Test that the dry flag follows dry_threshold_pct."""
    effective = {
        **defaults_for("moisture"),
        "dry_threshold_pct": 35.0,
        "location": "bed 2",
    }
    shaper = ReadingShaper("moisture")

    fields = shaper.shape(Reading({"moisture_pct": 34.0}, AT), effective)

    assert fields is not None
    assert fields["dry"] is True
    assert fields["location"] == "bed 2"


def test_boolean_quantities_stay_booleans() -> None:
    """Test that a digital sensor's dry flag is sent as true, not 1."""
    shaper = ReadingShaper("moisture")

    fields = shaper.shape(Reading({"dry": True}, AT), defaults_for("moisture"))

    assert fields is not None
    assert fields["dry"] is True
