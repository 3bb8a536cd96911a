"""The real flights data into both databases, with its types intact."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.app import Workbench
from workbench.sources.flights import load_table
from workbench.sources.ingest import ingest


def test_all_336776_flights_and_their_types(workbench: Workbench) -> None:
    result = ingest("flights", workbench=workbench, tables=["flights", "airlines"])
    assert result.tables == {"flights": 336_776, "airlines": 16}
    back = workbench.read_table("flights")
    assert len(back) == 336_776
    for column in ("dep_time", "dep_delay", "arr_delay", "air_time"):
        assert str(back[column].dtype) == "Int64", column
    for column in ("time_hour", "sched_dep_at", "dep_at"):
        assert str(back[column].dt.tz) == "America/New_York", column
    expected = load_table("flights")
    assert back["dep_delay"].isna().sum() == expected["dep_delay"].isna().sum() > 0
    assert back["arr_delay"].sum() == expected["arr_delay"].sum()
    # Instants survive exactly, whatever the database stores them as.
    assert back["dep_at"].min() == expected["dep_at"].min()
    assert back["sched_dep_at"].max() == expected["sched_dep_at"].max()
    # Analysts can query it with SQL: delays by carrier, joined to the carriers' names.
    by_carrier = workbench.sql(
        "SELECT a.name, count(*) AS n FROM flights f JOIN airlines a ON a.carrier = f.carrier "
        "GROUP BY a.name ORDER BY n DESC"
    )
    top = expected["carrier"].value_counts()
    assert by_carrier["n"].iloc[0] == top.iloc[0]


def test_a_date_range_of_every_table(workbench: Workbench) -> None:
    result = ingest("flights", workbench=workbench, start="2013-07-04", end="2013-07-04")
    assert set(result.tables) == {"flights", "airlines", "airports", "planes", "weather"}
    flights = workbench.read_table("flights")
    assert set(zip(flights["month"], flights["day"], strict=True)) == {(7, 4)}
    weather = workbench.read_table("weather")
    assert set(weather["time_hour"].dt.date) == {pd.Timestamp("2013-07-04").date()}
    assert result.tables["airports"] == len(load_table("airports"))


def test_one_table_under_another_name(workbench: Workbench) -> None:
    result = ingest("flights", "jan_first", workbench=workbench, tables="flights", end="2013-01-01")
    raw = load_table("flights")
    assert result.tables == {"jan_first": int(((raw["month"] == 1) & (raw["day"] == 1)).sum())}
    with pytest.raises(Exception, match="already exists"):
        ingest("flights", "jan_first", workbench=workbench, tables="flights", end="2013-01-01")
