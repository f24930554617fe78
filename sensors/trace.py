"""Replay of a recorded CSV trace, with time scaling.

The position in the trace is ``offset_s`` plus the clock's seconds since
``open()`` times ``speed``, counted from the first row. A reading holds the
last row at or before that position rather than interpolating: a real
sensor reports what it measured, steps such as a light switched on stay
steps, and every value sent is one that was actually recorded.

The file is a header of column names, then one row per sample. A row may
carry one extra leading field, a row index, as the UCI occupancy data does
(7 names, 8 fields). The ``date`` column holds ISO 8601 date-times, such as
``2015-02-04 17:51:00``; rows that cannot be parsed or that go back in time
are skipped and counted.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import logging
import math
from array import array
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sensors.base import Clock, Reading, Sensor, SensorMisconfigured, SensorUnavailable
from sensors.options import parse_options, require

__all__ = [
    "TRACE_COLUMNS",
    "Trace",
    "TraceConfig",
    "TraceSensor",
    "create_trace",
    "load_trace",
]

_LOGGER = logging.getLogger(__name__)

TRACE_COLUMNS: Mapping[str, str] = {
    "temperature_c": "Temperature",
    "humidity_pct": "Humidity",
    "illuminance_lux": "Light",
    "co2_ppm": "CO2",
}
"""Quantity name to trace column name (matched ignoring case)."""

DATE_COLUMN = "date"


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceConfig:
    """Options of :class:`TraceSensor`.

    Attributes:
        path: The CSV file; a relative path is taken from the working
            directory.
        quantities: Which quantities each reading carries.
        speed: Trace seconds per second of the clock.
        offset_s: Trace seconds after the first row to start at.
        loop: Start again from the first row after the last; if false, a
            read past the end raises :class:`SensorUnavailable`.
    """

    path: str
    quantities: tuple[str, ...] = tuple(TRACE_COLUMNS)
    speed: float = 1.0
    offset_s: float = 0.0
    loop: bool = True

    def __post_init__(self) -> None:
        known = ", ".join(TRACE_COLUMNS)
        require(
            bool(self.quantities),
            "quantities",
            list(self.quantities),
            "a non-empty list",
            'e.g. quantities = ["temperature_c"]',
        )
        require(
            len(set(self.quantities)) == len(self.quantities),
            "quantities",
            list(self.quantities),
            "free of repeats",
            "name each quantity once",
        )
        for name in self.quantities:
            require(
                name in TRACE_COLUMNS,
                "quantities",
                name,
                f"one of {known}",
                "pick names from that list",
            )
        require(self.speed > 0, "speed", self.speed, "above 0", "e.g. speed = 60")
        require(
            self.offset_s >= 0,
            "offset_s",
            self.offset_s,
            "0 or more",
            "e.g. offset_s = 0",
        )


@dataclass(frozen=True, slots=True)
class Trace:
    """A parsed trace, kept as packed arrays of doubles.

    Attributes:
        times_s: Seconds of each row after the first row, never decreasing.
        columns: One array per quantity, aligned with ``times_s``.
        skipped_rows: Rows that could not be used.
    """

    times_s: array[float]
    columns: Mapping[str, array[float]]
    skipped_rows: int = 0

    @property
    def period_s(self) -> float:
        """Return the trace's length, the last row held one mean step."""
        rows = len(self.times_s)
        last = self.times_s[-1]
        return last + last / (rows - 1) if rows > 1 else 0.0


def load_trace(path: Path, quantities: tuple[str, ...]) -> Trace:
    """Read and parse a trace file; this blocks, so call it in a thread.

    Args:
        path: The CSV file.
        quantities: Quantity names from :data:`TRACE_COLUMNS` to keep.

    Returns:
        The parsed trace.

    Raises:
        SensorMisconfigured: The file is missing or unreadable, its header
            lacks a needed column, or no row is usable.
    """
    try:
        with path.open(newline="", encoding="utf-8") as lines:
            return _parse(csv.reader(lines), path, quantities)
    except FileNotFoundError as err:
        raise SensorMisconfigured(
            f"trace file '{path}' not found; set option 'path' to an existing CSV file"
        ) from err
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise SensorMisconfigured(
            f"trace file '{path}' cannot be read ({err}); "
            "check its permissions and that it is a UTF-8 CSV file"
        ) from err


class TraceSensor:
    """Replays a recorded trace as if its rows were being measured now.

    Args:
        config: Which file, quantities, speed, offset and looping.
        clock: Source of time.
    """

    driver = "trace"

    def __init__(self, config: TraceConfig, *, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._trace: Trace | None = None
        self._opened_at = 0.0

    @property
    def quantities(self) -> tuple[str, ...]:
        """Return the quantities chosen by the ``quantities`` option."""
        return self._config.quantities

    async def open(self) -> None:
        """Read and parse the trace file off the event loop."""
        path = Path(self._config.path)
        trace = await asyncio.to_thread(load_trace, path, self._config.quantities)
        if trace.skipped_rows:
            _LOGGER.warning(
                "trace rows skipped path=%s skipped=%d kept=%d",
                path,
                trace.skipped_rows,
                len(trace.times_s),
            )
        self._trace = trace
        self._opened_at = self._clock.monotonic()

    async def read(self) -> Reading:
        """Return the row at the current position in the trace.

        Raises:
            SensorUnavailable: ``loop`` is false and the trace has ended.
            RuntimeError: The sensor is not open.
        """
        if self._trace is None:
            raise RuntimeError("sensor 'trace' is not open; await open() first")
        row = self._row_at(self._trace, self.position_s())
        values = {
            name: self._trace.columns[name][row] for name in self._config.quantities
        }
        return Reading(values=values, taken_at=self._clock.now())

    async def close(self) -> None:
        """Drop the parsed trace; ``open()`` reads the file again."""
        self._trace = None

    def position_s(self) -> float:
        """Return trace seconds after the first row, before any looping."""
        elapsed_s = self._clock.monotonic() - self._opened_at
        return self._config.offset_s + elapsed_s * self._config.speed

    def _row_at(self, trace: Trace, position_s: float) -> int:
        period_s = trace.period_s
        if position_s >= period_s > 0:
            if not self._config.loop:
                raise SensorUnavailable(
                    f"trace file '{self._config.path}' ended: position "
                    f"{position_s:.0f} s is past its end at {period_s:.0f} s; "
                    "set loop = true to replay it from the start"
                )
            position_s %= period_s
        return max(bisect_right(trace.times_s, position_s) - 1, 0)


def create_trace(options: Mapping[str, object], *, clock: Clock) -> Sensor:
    """Build a :class:`TraceSensor` from its options table."""
    config = parse_options(TraceConfig, options, driver=TraceSensor.driver)
    return TraceSensor(config, clock=clock)


@dataclass(slots=True)
class _Builder:
    """Accumulates usable rows while a trace file is parsed."""

    quantities: tuple[str, ...]
    times_s: array[float] = field(default_factory=lambda: array("d"))
    columns: dict[str, array[float]] = field(init=False)
    first: dt.datetime | None = None
    skipped: int = 0

    def __post_init__(self) -> None:
        self.columns = {name: array("d") for name in self.quantities}

    def add(self, when: dt.datetime, values: list[float]) -> None:
        """Append a row, or count it as skipped if it goes back in time."""
        if self.first is None:
            self.first = when
        try:
            offset_s = (when - self.first).total_seconds()
        except TypeError:  # A naive time among aware ones, or the reverse.
            offset_s = -math.inf
        if self.times_s and offset_s < self.times_s[-1]:
            self.skipped += 1
            return
        self.times_s.append(offset_s)
        for name, value in zip(self.quantities, values, strict=True):
            self.columns[name].append(value)


def _parse(rows: Iterator[list[str]], path: Path, quantities: tuple[str, ...]) -> Trace:
    header = next(rows, None)
    names = [name.strip().lower() for name in header or []]
    if DATE_COLUMN not in names:
        raise SensorMisconfigured(
            f"trace file '{path}' has no column {DATE_COLUMN!r} in its header; "
            "use a CSV whose first line names its columns, one of them 'date'"
        )
    date_index = names.index(DATE_COLUMN)
    indexes = [_column(names, quantity, path) for quantity in quantities]

    builder = _Builder(quantities)
    for row in rows:
        # The UCI files lead each row with a quoted index the header lacks.
        fields = row[1:] if len(row) == len(names) + 1 else row
        parsed = _parse_row(fields, len(names), date_index, indexes)
        if parsed is None:
            builder.skipped += 1
        else:
            builder.add(*parsed)

    if not builder.times_s:
        raise SensorMisconfigured(
            f"trace file '{path}' has no usable rows ({builder.skipped} skipped); "
            "check that its rows match the header and have ISO dates"
        )
    return Trace(builder.times_s, builder.columns, builder.skipped)


def _column(names: list[str], quantity: str, path: Path) -> int:
    column = TRACE_COLUMNS[quantity]
    if column.lower() not in names:
        raise SensorMisconfigured(
            f"trace file '{path}' has no column {column!r} for {quantity}; "
            f"remove {quantity} from option 'quantities' or use a trace with "
            "that column"
        )
    return names.index(column.lower())


def _parse_row(
    fields: list[str], width: int, date_index: int, indexes: list[int]
) -> tuple[dt.datetime, list[float]] | None:
    if len(fields) != width:
        return None
    try:
        when = dt.datetime.fromisoformat(fields[date_index].strip())
        values = [float(fields[index]) for index in indexes]
    except ValueError:
        return None
    return (when, values) if all(map(math.isfinite, values)) else None
