"""Tests for replaying a recorded CSV trace."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest

from sensors.base import SensorMisconfigured, SensorUnavailable
from sensors.trace import TraceConfig, TraceSensor, load_trace
from tests.sensors.fakes import FakeClock

# The shared data folder sits next to the repository, never inside it.
DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
OFFICE_TRACE = DATA_DIR / "occupancy-office-2015.txt"
needs_office_trace = pytest.mark.skipif(
    not OFFICE_TRACE.is_file(),
    reason=f"the office trace is not at {OFFICE_TRACE} (CI always has ../shared/data)",
)

OFFICE_ROWS = 8143
# 2015-02-04 17:51:00 to 2015-02-10 09:33:00, and the last row held one
# mean step of exactly 60 s.
OFFICE_LAST_ROW_S = 488_520.0
OFFICE_PERIOD_S = 488_580.0
ROW_1 = {
    "temperature_c": 23.18,
    "humidity_pct": 27.272,
    "illuminance_lux": 426.0,
    "co2_ppm": 721.25,
}
ROW_2 = {  # 2015-02-04 17:51:59
    "temperature_c": 23.15,
    "humidity_pct": 27.2675,
    "illuminance_lux": 429.5,
    "co2_ppm": 714.0,
}
ROW_3 = {  # 2015-02-04 17:53:00
    "temperature_c": 23.15,
    "humidity_pct": 27.245,
    "illuminance_lux": 426.0,
    "co2_ppm": 713.5,
}
ROW_4000 = {  # 2015-02-07 12:29:59, nobody in the office
    "temperature_c": 23.02,
    "humidity_pct": 17.352,
    "illuminance_lux": 317.5,
    "co2_ppm": 456.0,
}
ROW_8143 = {  # 2015-02-10 09:33:00
    "temperature_c": 21.1,
    "humidity_pct": 36.2,
    "illuminance_lux": 447.0,
    "co2_ppm": 821.0,
}

HEADER = '"date","Temperature","Humidity","Light","CO2"\n'


async def _opened(clock: FakeClock, path: Path, **options: Any) -> TraceSensor:
    sensor = TraceSensor(TraceConfig(path=str(path), **options), clock=clock)
    await sensor.open()
    return sensor


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text, encoding="utf-8")
    return path


@needs_office_trace
async def test_first_read_is_the_first_row(fake_clock: FakeClock) -> None:
    """Test that a fresh replay gives row 1: 23.18 degC, 27.272 %, 426 lux."""
    sensor = await _opened(fake_clock, OFFICE_TRACE)

    reading = await sensor.read()

    assert reading.values == ROW_1
    assert sensor.quantities == tuple(ROW_1)


@needs_office_trace
async def test_speed_scales_the_position(fake_clock: FakeClock) -> None:
    """Test that 2 s at speed 60 reaches the row 120 s in, not before."""
    sensor = await _opened(fake_clock, OFFICE_TRACE, speed=60.0)

    fake_clock.advance(1.98)
    just_before = await sensor.read()
    fake_clock.advance(0.02)
    on_time = await sensor.read()

    assert just_before.values == ROW_2
    assert on_time.values == ROW_3
    assert sensor.position_s() == pytest.approx(120.0)


@needs_office_trace
async def test_value_holds_the_last_row_at_or_before(fake_clock: FakeClock) -> None:
    """Test that between rows the earlier row is held, not interpolated."""
    sensor = await _opened(fake_clock, OFFICE_TRACE, offset_s=239_939.0)

    on_row = await sensor.read()
    fake_clock.advance(59.0)
    still = await sensor.read()

    assert on_row.values == ROW_4000
    assert still.values == ROW_4000


@needs_office_trace
async def test_offset_reaches_the_last_row(fake_clock: FakeClock) -> None:
    """Test that offset_s positions the replay on the file's last row."""
    sensor = await _opened(fake_clock, OFFICE_TRACE, offset_s=OFFICE_LAST_ROW_S)

    reading = await sensor.read()

    assert reading.values == ROW_8143


@needs_office_trace
async def test_replay_loops_to_the_start(fake_clock: FakeClock) -> None:
    """Test that past its end the trace starts again from row 1."""
    sensor = await _opened(
        fake_clock, OFFICE_TRACE, speed=3600.0, offset_s=OFFICE_LAST_ROW_S
    )

    held = await sensor.read()
    fake_clock.advance(60.0 / 3600.0)
    wrapped = await sensor.read()
    fake_clock.advance(120.0 / 3600.0)
    third = await sensor.read()

    assert held.values == ROW_8143
    assert wrapped.values == ROW_1
    assert third.values == ROW_3


@needs_office_trace
async def test_replay_without_loop_ends(fake_clock: FakeClock) -> None:
    """Test that with loop false a read past the end says how to continue."""
    sensor = await _opened(
        fake_clock, OFFICE_TRACE, offset_s=OFFICE_PERIOD_S - 1.0, loop=False
    )
    assert (await sensor.read()).values == ROW_8143
    fake_clock.advance(1.0)

    with pytest.raises(SensorUnavailable) as caught:
        await sensor.read()

    assert str(caught.value) == (
        f"trace file '{OFFICE_TRACE}' ended: position 488580 s is past its end "
        "at 488580 s; set loop = true to replay it from the start"
    )


@needs_office_trace
async def test_quantities_option_picks_columns(fake_clock: FakeClock) -> None:
    """Test that only the chosen quantities are read, in the chosen order."""
    sensor = await _opened(
        fake_clock, OFFICE_TRACE, quantities=("humidity_pct", "temperature_c")
    )

    reading = await sensor.read()

    assert reading.values == {"humidity_pct": 27.272, "temperature_c": 23.18}
    assert sensor.quantities == ("humidity_pct", "temperature_c")


@needs_office_trace
def test_office_trace_is_kept_in_packed_arrays() -> None:
    """Test that every office row parses into arrays of doubles."""
    trace = load_trace(OFFICE_TRACE, ("illuminance_lux",))

    assert trace.times_s.typecode == "d"
    assert trace.columns["illuminance_lux"].typecode == "d"
    assert len(trace.times_s) == OFFICE_ROWS
    assert trace.skipped_rows == 0
    assert trace.times_s[-1] == OFFICE_LAST_ROW_S
    assert trace.period_s == OFFICE_PERIOD_S


async def test_reading_is_stamped_with_the_clock_now(
    fake_clock: FakeClock, tmp_path: Path
) -> None:
    """Test that taken_at is the clock's time, not the trace's 2015 date."""
    path = _write(tmp_path, HEADER + "2015-02-04 17:51:00,20,30,0,400\n")
    sensor = await _opened(fake_clock, path)
    fake_clock.advance(5.0)

    reading = await sensor.read()

    assert reading.taken_at == dt.datetime(2024, 6, 21, 0, 0, 5, tzinfo=dt.UTC)


async def test_rows_without_an_index_are_read(
    fake_clock: FakeClock, tmp_path: Path
) -> None:
    """Test that a trace whose rows match the header width is also accepted."""
    path = _write(
        tmp_path,
        HEADER + "2015-02-04 17:51:00,20,30,0,400\n2015-02-04 17:52:00,21,31,5,410\n",
    )
    sensor = await _opened(fake_clock, path, speed=60.0)
    fake_clock.advance(1.0)

    reading = await sensor.read()

    assert reading.values == {
        "temperature_c": 21.0,
        "humidity_pct": 31.0,
        "illuminance_lux": 5.0,
        "co2_ppm": 410.0,
    }


async def test_malformed_rows_are_skipped_and_counted(
    fake_clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Test that bad rows are skipped, counted and logged once on open."""
    path = _write(
        tmp_path,
        HEADER
        + '"1","2015-02-04 17:51:00",20,30,0,400\n'
        + '"2","yesterday",21,31,0,400\n'
        + '"3","2015-02-04 17:53:00",21,thirty,0,400\n'
        + '"4","2015-02-04 17:54:00",21\n'
        + '"5","2015-02-04 17:50:00",21,31,0,400\n'
        + '"6","2015-02-04 17:55:00",22,nan,0,400\n'
        + '"7","2015-02-04 17:56:00",23,33,7,420\n',
    )

    with caplog.at_level(logging.WARNING, logger="sensors.trace"):
        sensor = await _opened(fake_clock, path)
    trace = load_trace(path, tuple(ROW_1))

    assert trace.skipped_rows == 5
    assert list(trace.times_s) == [0.0, 300.0]
    assert list(trace.columns["temperature_c"]) == [20.0, 23.0]
    assert sensor.quantities == (
        "temperature_c",
        "humidity_pct",
        "illuminance_lux",
        "co2_ppm",
    )
    assert caplog.messages == [
        f"trace rows skipped path={path} skipped=5 kept=2",
    ]


async def test_missing_file_is_misconfigured(
    fake_clock: FakeClock, tmp_path: Path
) -> None:
    """Test the message for a trace file that does not exist."""
    path = tmp_path / "x.csv"

    with pytest.raises(SensorMisconfigured) as caught:
        await _opened(fake_clock, path)

    assert str(caught.value) == (
        f"trace file '{path}' not found; set option 'path' to an existing CSV file"
    )


async def test_header_without_a_column_is_misconfigured(
    fake_clock: FakeClock, tmp_path: Path
) -> None:
    """Test the message for a header that lacks a chosen quantity's column."""
    path = _write(tmp_path, '"date","Temperature"\n"2015-02-04 17:51:00",20\n')

    with pytest.raises(SensorMisconfigured) as caught:
        await _opened(fake_clock, path, quantities=("illuminance_lux",))

    assert str(caught.value) == (
        f"trace file '{path}' has no column 'Light' for illuminance_lux; "
        "remove illuminance_lux from option 'quantities' or use a trace with "
        "that column"
    )


async def test_header_without_dates_is_misconfigured(
    fake_clock: FakeClock, tmp_path: Path
) -> None:
    """Test the message for a file whose first line is not a header."""
    path = _write(tmp_path, '"1","2015-02-04 17:51:00",20,30,0,400\n')

    with pytest.raises(SensorMisconfigured) as caught:
        await _opened(fake_clock, path)

    assert str(caught.value) == (
        f"trace file '{path}' has no column 'date' in its header; "
        "use a CSV whose first line names its columns, one of them 'date'"
    )


async def test_empty_file_is_misconfigured(
    fake_clock: FakeClock, tmp_path: Path
) -> None:
    """Test that an empty file fails on its missing header."""
    path = _write(tmp_path, "")

    with pytest.raises(SensorMisconfigured, match="has no column 'date'"):
        await _opened(fake_clock, path)


async def test_no_usable_rows_is_misconfigured(
    fake_clock: FakeClock, tmp_path: Path
) -> None:
    """Test the message when every row is malformed."""
    path = _write(tmp_path, HEADER + "not,a,row\n2015-02-04,x,y,z,w\n")

    with pytest.raises(SensorMisconfigured) as caught:
        await _opened(fake_clock, path)

    assert str(caught.value) == (
        f"trace file '{path}' has no usable rows (2 skipped); "
        "check that its rows match the header and have ISO dates"
    )


async def test_unreadable_file_is_misconfigured(
    fake_clock: FakeClock, tmp_path: Path
) -> None:
    """Test that a file that is not UTF-8 text gets a message with a fix."""
    path = tmp_path / "trace.csv"
    path.write_bytes(b"\xff\xfe\x00binary")

    with pytest.raises(SensorMisconfigured) as caught:
        await _opened(fake_clock, path)

    assert str(caught.value).startswith(f"trace file '{path}' cannot be read (")
    assert str(caught.value).endswith(
        "; check its permissions and that it is a UTF-8 CSV file"
    )


def test_unknown_quantity_is_misconfigured() -> None:
    """Test the message for a quantity the trace driver cannot map."""
    with pytest.raises(SensorMisconfigured) as caught:
        TraceConfig(path="t.csv", quantities=("occupancy",))

    assert str(caught.value) == (
        "option 'quantities' = 'occupancy' must be one of temperature_c, "
        "humidity_pct, illuminance_lux, co2_ppm; pick names from that list"
    )


def test_repeated_quantity_is_misconfigured() -> None:
    """Test that a quantity named twice is refused."""
    with pytest.raises(SensorMisconfigured) as caught:
        TraceConfig(path="t.csv", quantities=("co2_ppm", "co2_ppm"))

    assert str(caught.value) == (
        "option 'quantities' = ['co2_ppm', 'co2_ppm'] must be free of repeats; "
        "name each quantity once"
    )


async def test_read_before_open_raises(fake_clock: FakeClock) -> None:
    """Test that reading an unopened trace names the fix."""
    sensor = TraceSensor(TraceConfig(path="t.csv"), clock=fake_clock)

    with pytest.raises(RuntimeError) as caught:
        await sensor.read()

    assert str(caught.value) == "sensor 'trace' is not open; await open() first"


async def test_close_releases_the_trace(fake_clock: FakeClock, tmp_path: Path) -> None:
    """Test that close may be called twice and reads then need open again."""
    path = _write(tmp_path, HEADER + "2015-02-04 17:51:00,20,30,0,400\n")
    sensor = await _opened(fake_clock, path)

    await sensor.close()
    await sensor.close()

    with pytest.raises(RuntimeError, match="not open"):
        await sensor.read()
