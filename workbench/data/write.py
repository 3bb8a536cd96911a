"""Writing a DataFrame as one transaction: create, append, replace (a swap) or upsert.

Every mode runs on one connection: new tables come from :meth:`Backend.new_table`, rows
arrive by bulk Arrow ingest, ``replace`` fills a staging table and swaps it in (or, where
the writer may not swap tables, deletes the rows it may change and ingests the new ones),
``upsert`` ingests into a staging table and merges with one ``INSERT ... ON CONFLICT``, and
the ``datasets`` row is written last, all before the single commit.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from workbench.data.arrow import Spec, decode_type, frame_to_arrow, widen_decimal
from workbench.data.backends.base import Backend
from workbench.data.errors import DataError

__all__ = ["MODES", "write_frame"]

MODES = ("create", "append", "replace", "upsert")


def write_frame(
    backend: Backend,
    df: pd.DataFrame,
    table: str,
    mode: str,
    key: Sequence[str],
    add_columns: bool,
) -> int:
    """Write ``df`` to ``table`` and commit; on any failure nothing is changed."""
    data, specs = frame_to_arrow(df, table, backend.dialect)
    try:
        existing = backend.columns(table)
        if mode == "create" and existing is not None:
            raise DataError(
                f"Table {table!r} already exists; write it with mode append, replace or "
                "upsert (`--mode` on the command line, `mode=` in Python), or choose another "
                "name."
            )
        if existing is not None:
            backend.check_existing(table)
        if existing is None:
            backend.new_table(table, data.schema, specs, key)
            backend.ingest(table, data)
        elif mode == "replace" and backend.can_swap(table):
            backend.replace(table, data, specs, key)
        elif mode == "replace":
            specs = _replace_rows(backend, table, data, specs, existing, key)
        else:
            missing_key = [k for k in key if k not in existing]
            if missing_key:
                raise DataError(
                    f"Table {table!r} has no column {missing_key[0]!r} to use as the key."
                )
            old = backend.dataset_specs(table)
            data, specs = _align(backend, table, data, specs, existing, old, add_columns)
            if mode == "append":
                backend.ingest(table, data)
            else:
                _upsert(backend, table, data, specs, key)
        backend.record_dataset(table, mode, len(df), specs)
        backend.finish_write(table)
        backend.commit()
    except backend.errors as exc:
        raise backend.explain(exc, table) from None
    return len(df)


def _upsert(
    backend: Backend, table: str, data: pa.Table, specs: dict[str, Spec], key: Sequence[str]
) -> None:
    try:
        backend.unique_index(table, key)
    except backend.errors as exc:
        if "unique" not in str(exc).split("\n")[0].lower():  # refused, not duplicated
            raise backend.explain(exc, table) from None
        raise DataError(
            f"Table {table!r}: the key {', '.join(key)} is not unique in the table, so rows "
            f"cannot be matched ({backend.explain(exc, table)}). Deduplicate the table first."
        ) from None
    staging = backend.staging_table(data.schema, specs)
    backend.ingest(staging, data)
    backend.upsert(table, staging, data.column_names, key)


def _replace_rows(
    backend: Backend,
    table: str,
    data: pa.Table,
    specs: dict[str, Spec],
    existing: dict[str, pa.DataType],
    key: Sequence[str],
) -> dict[str, Spec]:
    """``replace`` that keeps the table: delete the rows the writer may change, ingest the new.

    Used where the writer may not swap tables (an analyst's own login in team mode): the
    table, its columns, policies and shares stay; the frame must have the table's columns.
    """
    columns = [n for n in existing if n not in backend.hidden_columns]
    ask = (
        "an analyst's replace keeps the table and replaces your team's rows, so the frame "
        "needs the table's columns and types; ask an admin to replace the table itself, or "
        "write to a new table"
    )
    if sorted(columns) != sorted(data.column_names):
        raise DataError(
            f"Table {table!r} has the columns {', '.join(columns)} but the frame has "
            f"{', '.join(data.column_names)}: {ask}."
        )
    old = backend.dataset_specs(table)
    try:
        aligned, merged = _align(backend, table, data, specs, existing, old, False)
    except DataError as exc:
        raise DataError(f"{exc} ({ask})") from None
    backend.delete_rows(table)
    backend.ingest(table, aligned)
    if key:
        backend.unique_index(table, key)
    # The frame's dtypes where the table holds the same kind of values, else the recorded ones.
    return {
        name: spec if name not in old or _kind(spec) == _kind(old[name]) else merged[name]
        for name, spec in specs.items()
    }


def _kind(spec: Spec) -> str:
    if spec["kind"] == "category":
        return _kind(spec["value"])
    if spec["kind"] == "timestamp":
        return "timestamptz" if decode_type(spec["arrow"]).tz else "timestamp"
    return str(spec["kind"])


def _compatible(frame: str, table: str) -> bool:
    return frame == table or table == "any" or frame == "null" or (frame, table) == ("int", "float")


def _align(
    backend: Backend,
    table: str,
    data: pa.Table,
    specs: dict[str, Spec],
    existing: dict[str, pa.DataType],
    old: dict[str, Spec],
    add_columns: bool,
) -> tuple[pa.Table, dict[str, Spec]]:
    """``data`` typed like the existing table, new columns added; the merged specs."""
    extra = [n for n in data.column_names if n not in existing]
    if extra and not add_columns:
        raise DataError(
            f"Table {table!r} has no column(s) {', '.join(map(repr, extra))}; pass "
            "add_columns=True to add them, or drop them from the frame."
        )
    merged = dict(old)
    arrays, names = [], []
    for name, storage in existing.items():
        if name not in data.column_names:
            continue
        spec, before = specs[name], old.get(name)
        table_kind = _kind(before) if before else backend.existing_kind(name, storage)
        if not _compatible(_kind(spec), table_kind):
            raise DataError(
                f"Table {table!r}, column {name!r}: the table holds {table_kind} values but "
                f"the frame has {_kind(spec)} values; convert the column first "
                f"(e.g. df[{name!r}].astype(...)) or write to a new table."
            )
        if before is not None:
            merged[name] = _merge(before, spec, data.column(name))
        arrays.append(_fit(data.column(name), storage, table, name))
        names.append(name)
    for name in extra:
        backend.add_column(table, name, data.column(name).type, specs[name])
        merged[name] = specs[name]
        arrays.append(data.column(name))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names), merged


def _fit(column: pa.ChunkedArray, storage: pa.DataType, table: str, name: str) -> pa.ChunkedArray:
    """The column cast to the table's storage type; values that do not fit are an error."""
    numeric = (pa.types.is_integer(t) or pa.types.is_floating(t) for t in (storage, column.type))
    if column.type == storage or not all(numeric):
        return column
    try:
        return column.cast(storage)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"Table {table!r}, column {name!r}: a value does not fit the column's type "
            f"{storage} ({exc}); nothing was changed."
        ) from None


def _merge(before: Spec, spec: Spec, column: pa.ChunkedArray) -> Spec:
    """The recorded spec, with categories widened to the values now written."""
    if before["kind"] == "decimal":
        return widen_decimal(before, spec)
    if before["kind"] != "category":
        return before
    new = spec["categories"] if spec["kind"] == "category" else None
    if new is None:
        new = [v for v in pc.unique(column.cast(pa.string())).to_pylist() if v is not None]
    known = list(before["categories"])
    known += [v for v in new if v not in set(known)]
    return {**before, "categories": known}
