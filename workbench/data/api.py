"""The data API analysts use: ``wb.sql``, ``wb.read_table``, ``wb.write``, ``wb.tables``,
``wb.describe``. Each function takes the workbench to act on as its first argument, so it is
at once a method of :class:`~workbench.app.Workbench` and, bound to the default workbench, a
function of the facade. pandas, Arrow and the backends load on the first call, not on import.

Data moves as Arrow through ADBC (binary COPY on PostgreSQL, the C driver on SQLite); values
are always bound parameters; names are validated and quoted; a write is one transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from workbench.data.errors import DataError, TableNotFoundError
from workbench.db.identifiers import check_column, check_columns, check_table, check_writable
from workbench.db.rls import TEAM_COLUMN

if TYPE_CHECKING:
    import pandas as pd

    from workbench.data.backends.base import Backend
    from workbench.data.catalog import TableDescription
    from workbench.db.handle import Database

__all__ = [
    "DataError",
    "TableNotFoundError",
    "describe",
    "open_backend",
    "read_table",
    "release_connections",
    "sql",
    "tables",
    "warm_up",
    "write",
]


def open_backend(workbench: Database, *, writing: bool = False) -> Backend:
    """A connection to the workbench's database, in a transaction.

    ``writing=True`` gives, in team mode, the backend that protects the tables it creates,
    and on SQLite a transaction that holds the write lock from its start.
    """
    url = workbench.database_url
    if url.startswith("sqlite"):
        from workbench.data.backends.sqlite import SQLiteBackend

        return SQLiteBackend.open(workbench.engine, writing=writing)
    if writing:
        from workbench.data.backends.governed import GovernedBackend

        return GovernedBackend.open(url, workbench.settings)
    from workbench.data.backends.postgres import PostgresBackend

    return PostgresBackend.open(url, workbench.settings)


def warm_up(workbench: Database) -> None:
    """Import what a first call on ``workbench``'s database would (pandas, Arrow, the backend
    and its driver), so a process that will query soon, like a pre-heated dashboard kernel
    waiting for its viewer, pays it before it is asked."""
    import pandas  # noqa: F401

    from workbench.data import arrow  # noqa: F401
    from workbench.data.backends import base  # noqa: F401

    if workbench.database_url.startswith("sqlite"):
        from workbench.data.backends import sqlite  # noqa: F401
    else:
        from workbench.data.backends import postgres  # noqa: F401


def release_connections(workbench: Database) -> None:
    """Close the idle pooled connections the data API keeps for ``workbench``'s login, for a
    handle that is done, such as a dashboard viewer's. (On SQLite the data API uses the
    engine's own connections, which closing the workbench closes.)"""
    if workbench.database_url.startswith("sqlite"):
        return
    from workbench.data.backends.postgres import PostgresBackend

    PostgresBackend.release(workbench.database_url, workbench.settings)


def sql(
    workbench: Database, /, query: str, cache: float | None = None, **params: Any
) -> pd.DataFrame:
    """Run ``query`` with ``:name`` parameters bound from ``params``; the result as a DataFrame.

    ``cache=seconds`` keeps the result that long (Redis if configured, else in-process);
    ``wb.write`` to a table the query names drops it.
    """
    import pandas as pd

    from workbench.data.arrow import to_frame
    from workbench.data.backends.base import to_positional

    if not isinstance(query, str) or not query.strip():
        raise DataError("wb.sql needs a query string, e.g. wb.sql('select * from sales').")
    if cache is not None:
        from workbench.data.cache import cache_for

        if cache <= 0:
            raise DataError(f"cache={cache!r}: give the number of seconds to keep the result.")
        store = cache_for(workbench)
        hit = store.get(query, params)
        if hit is not None:
            return hit
    with open_backend(workbench) as backend:
        statement, values = to_positional(query, params, backend.param_style)
        try:
            result = backend.fetch(statement, values)
            backend.commit()
        except backend.errors as exc:
            reason = str(exc).split("\n")[0]
            raise DataError(f"The query failed: {reason}") from None
    frame = pd.DataFrame() if result is None else to_frame(result)
    if cache is not None and result is not None:
        store.put(query, params, frame, cache)
    return frame


def read_table(
    workbench: Database,
    /,
    name: str,
    columns: Sequence[str] | str | None = None,
    where: str | None = None,
    limit: int | None = None,
    params: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Table ``name`` as a DataFrame with the dtypes it was written with.

    ``columns`` names the columns to read (one name or a list; default: all).

    ``where`` is an SQL condition that may use ``:name`` parameters from ``params``.
    """
    import pyarrow as pa

    from workbench.data.arrow import to_frame
    from workbench.data.backends.base import to_positional

    table = check_table(name)
    selected = "*"
    names = _chosen_columns(workbench, table, columns)
    if where is not None and not isinstance(where, str):
        raise DataError(f'where={where!r} must be an SQL condition (text), e.g. "qty > 5".')
    with open_backend(workbench) as backend:
        if names:
            selected = ", ".join(backend.q(c) for c in names)
        query = f"SELECT {selected} FROM {backend.q(table)}"  # noqa: S608 (names are quoted)
        if where:
            if ";" in where:
                raise DataError(f"where={where!r} must be one condition, without ';'.")
            query += f" WHERE ({where})"
        bound = dict(params or {})
        if limit is not None:
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
                raise DataError(f"limit={limit!r} must be a whole number >= 0.")
            bound["_wb_limit"] = limit
            query += " LIMIT :_wb_limit"
        statement, values = to_positional(query, bound, backend.param_style)
        try:
            specs = backend.dataset_specs(table)
            result = backend.fetch(statement, values)
            backend.commit()
        except backend.errors as exc:
            raise backend.explain(exc, table, "read") from None
    if result is None:  # pragma: no cover - a SELECT always has a result
        raise DataError(f"Table {table!r} returned no result.")
    if columns is None and TEAM_COLUMN in result.column_names and TEAM_COLUMN not in specs:
        # Team mode adds the rows' team; it is not part of the frame that was written.
        result = result.drop_columns([TEAM_COLUMN])
    try:
        return to_frame(result, specs)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise DataError(
            f"Table {table!r}: its columns no longer hold the types recorded at the last "
            f"wb.write ({exc}); rewrite it with wb.write(..., mode='replace')."
        ) from None


def _chosen_columns(
    workbench: Database, table: str, columns: Sequence[str] | str | None
) -> list[str]:
    """The columns ``read_table`` selects (``[]``: all), each checked to be one of the
    table's: SQLite would read an unknown double-quoted name as a text literal, a column of
    its name in every row."""
    if columns is None:
        return []
    if isinstance(columns, str):
        columns = [columns]
    if not isinstance(columns, Sequence) or not all(isinstance(c, str) for c in columns):
        raise DataError(f"columns={columns!r} must be a list of column names, e.g. ['qty'].")
    names = [check_column(c, table) for c in columns]
    if not names:
        return []
    import sqlalchemy as sa

    try:
        existing = [c["name"] for c in sa.inspect(workbench.engine).get_columns(table)]
    except sa.exc.NoSuchTableError:
        raise TableNotFoundError(
            f"Table {table!r} does not exist; check the name with wb.tables()."
        ) from None
    unknown = [n for n in names if n not in existing]
    if unknown:
        raise DataError(
            f"Table {table!r} has no column {', '.join(map(repr, unknown))}; its columns: "
            f"{', '.join(existing)}."
        )
    return names


def write(
    workbench: Database,
    /,
    df: pd.DataFrame,
    table: str,
    mode: str = "create",
    key: str | Sequence[str] | None = None,
    add_columns: bool = False,
    *,
    team: str | None = None,
    shared: bool = False,
) -> int:
    """Write ``df`` to ``table`` in one transaction; the number of rows written.

    ``mode``: ``create`` (the table must not exist), ``append``, ``replace`` (swapped in
    atomically) or ``upsert`` (rows matched on ``key``). ``add_columns=True`` lets
    ``append``/``upsert`` add columns the table lacks. The frame's index is not written.
    In team mode (PostgreSQL) a new table belongs to ``team`` (needed when the writer has
    several teams, or is the service with several teams in the database) under row-level
    security; ``shared=True`` lets every user read it. See docs/security.md.
    """
    import pandas as pd

    from workbench.data.cache import cache_for
    from workbench.data.write import MODES, write_frame

    name = check_writable(table)
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"wb.write needs a pandas DataFrame, not {type(df).__name__}.")
    if mode not in MODES:
        raise DataError(f"mode={mode!r} is not one of {', '.join(MODES)}.")
    keys = [key] if isinstance(key, str) else list(key or [])
    check_columns(df.columns, name)
    if mode == "upsert" and not keys:
        raise DataError(f"Table {name!r}: mode='upsert' needs key=, the column(s) to match on.")
    for column in keys:
        if column not in df.columns:
            raise DataError(f"Table {name!r}: the key column {column!r} is not in the frame.")
    if keys:
        duplicated = df.duplicated(subset=keys)
        if duplicated.any():
            row = duplicated.idxmax()
            raise DataError(
                f"Table {name!r}, key {', '.join(keys)}: row {row} repeats a key value; "
                "each key may appear once per write (e.g. df.drop_duplicates(subset=key))."
            )
    if not workbench.database_url.startswith("sqlite") and any(
        str(c).lower() == TEAM_COLUMN for c in df.columns
    ):
        raise DataError(
            f"Table {name!r}: the column {TEAM_COLUMN!r} is set by Workbench in team mode (the "
            "team each row belongs to); rename or drop it in the frame."
        )
    with open_backend(workbench, writing=True) as backend:
        backend.govern(team, shared)
        rows = write_frame(backend, df, name, mode, keys, add_columns)
    cache_for(workbench).invalidate(name)
    return rows


def tables(workbench: Database, /) -> pd.DataFrame:
    """The tables analysts can read (not Workbench's own), with their last write."""
    from workbench.data.catalog import list_tables

    return list_tables(workbench)


def describe(workbench: Database, /, table: str) -> TableDescription:
    """Columns, types, row count, owner and last write of ``table``."""
    from workbench.data.catalog import describe_table

    description = describe_table(workbench, check_table(table))
    written = {c.name for c in description.columns if c.dtype is not None}
    if written and TEAM_COLUMN not in written:
        # Like read_table: the team column team mode adds is not one of the frame's.
        kept = tuple(c for c in description.columns if c.name != TEAM_COLUMN)
        description = dataclasses.replace(description, columns=kept)
    return description
