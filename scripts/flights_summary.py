"""Print what the flights pipeline produced: the KPIs recorded and where the outputs are."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

import workbench as wb
from workbench.runs.api import runs as recent_runs

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = [ROOT / "notebooks" / n for n in ("ingest_flights", "data_quality", "flights_kpis")]


def main() -> None:
    console = Console()
    kpis = str(ROOT / "notebooks" / "flights_kpis.ipynb")
    table = Table(title="2013 New York flights: key figures")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("flights", f"{wb.latest_result(kpis, 'flights'):,}")
    table.add_row(
        "on-time rate (arrival < 15 min late)", f"{wb.latest_result(kpis, 'on_time_rate'):.1%}"
    )
    table.add_row("average arrival delay", f"{wb.latest_result(kpis, 'avg_arr_delay'):.1f} min")
    table.add_row("cancellation rate", f"{wb.latest_result(kpis, 'cancellation_rate'):.2%}")
    by_carrier = wb.latest_result(kpis, "by_carrier").sort_values("on_time_rate", ascending=False)
    best, worst = by_carrier.iloc[0], by_carrier.iloc[-1]
    table.add_row("most punctual carrier", f"{best['carrier']} ({best['on_time_rate']:.1%})")
    table.add_row("least punctual carrier", f"{worst['carrier']} ({worst['on_time_rate']:.1%})")
    console.print(table)

    runs = Table(title="Runs")
    for column in ("notebook", "status", "seconds", "output"):
        runs.add_column(column)
    for notebook in NOTEBOOKS:
        (run,) = recent_runs(limit=1, notebook=str(notebook) + ".ipynb")
        runs.add_row(notebook.name, run.status.value, f"{run.duration or 0:.1f}", run.output_uri)
    console.print(runs)


if __name__ == "__main__":
    main()
