"""DataFrames to and from Arrow for the databases, with a spec per column for exact round trips.

A write turns each pandas column into its *natural* Arrow array and a JSON spec (kind, Arrow
type, pandas dtype, categories); the spec is kept in the ``datasets`` catalog. Storage is the
natural array adapted to the database: PostgreSQL takes Arrow types almost as they are; SQLite
keeps booleans as 0/1, dates, timestamps and decimals as ISO text. A read casts back to the
natural type and the recorded pandas dtype, so ``read_table(write(df))`` equals ``df``.

Relies on pandas >= 2.3 (non-nanosecond datetimes, ``StringDtype(na_value=...)``); tested on
pandas 3, whose default string dtype is ``str``.
"""

from __future__ import annotations

import base64
import functools
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from workbench.data.errors import DataError

__all__ = [
    "Dialect",
    "Spec",
    "decimals_as_floats",
    "decode_type",
    "dtype_label",
    "frame_to_arrow",
    "storage_kind",
    "to_frame",
    "widen_decimal",
]

Dialect = Literal["postgresql", "sqlite"]
Spec = dict[str, Any]


# -- pandas dtypes and Arrow types as JSON ---------------------------------------------------


def _encode_type(arrow_type: pa.DataType) -> str:
    schema = pa.schema([pa.field("v", arrow_type)])
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


@functools.lru_cache(maxsize=4096)
def decode_type(text: str) -> pa.DataType:
    """The Arrow type recorded by :func:`_encode_type` (cached: every read decodes each column)."""
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))
    return schema.field(0).type


def _dtype_token(dtype: Any) -> dict[str, str]:
    if isinstance(dtype, pd.StringDtype):
        return {"string": dtype.storage, "na": "NA" if dtype.na_value is pd.NA else "nan"}
    if isinstance(dtype, pd.ArrowDtype):
        return {"arrow": "natural"}
    return {"name": str(dtype)}


def _token_dtype(token: dict[str, str], natural: pa.DataType) -> Any:
    if "string" in token:
        na_value = pd.NA if token["na"] == "NA" else np.nan
        return pd.StringDtype(token["string"], na_value=na_value)
    if "arrow" in token:
        return pd.ArrowDtype(natural)
    return pd.api.types.pandas_dtype(token["name"])


def _kind(arrow_type: pa.DataType) -> str:
    checks = [
        (pat.is_dictionary, "category"),
        (pat.is_boolean, "bool"),
        (pat.is_integer, "int"),
        (pat.is_floating, "float"),
        (lambda t: pat.is_string(t) or pat.is_large_string(t) or pat.is_string_view(t), "str"),
        (pat.is_date, "date"),
        (pat.is_timestamp, "timestamp"),
        (pat.is_decimal, "decimal"),
        (lambda t: pat.is_binary(t) or pat.is_large_binary(t), "bytes"),
        (pat.is_null, "null"),
    ]
    for check, kind in checks:
        if check(arrow_type):
            return kind
    return "unsupported"


def storage_kind(arrow_type: pa.DataType) -> str:
    """The kind of a column as the database returns it (for tables without a spec)."""
    if isinstance(arrow_type, pa.OpaqueType):
        return "decimal" if arrow_type.type_name == "numeric" else _kind(arrow_type.storage_type)
    if isinstance(arrow_type, pa.ExtensionType):
        return _kind(arrow_type.storage_type)
    return _kind(arrow_type)


# -- writing ---------------------------------------------------------------------------------


def _arrow_table(df: pd.DataFrame, table: str) -> pa.Table:
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowException, OverflowError, ValueError, TypeError):
        pass
    for name in df.columns:  # find the column (and row) that failed, to say so
        series = df[name]
        try:
            pa.array(series, from_pandas=True)
        except (pa.ArrowException, OverflowError, ValueError, TypeError) as exc:
            raise DataError(
                f"Table {table!r}, column {name!r}: {_first_odd_value(series)}; convert the "
                f"column to one type first ({type(exc).__name__}: {exc})."
            ) from None
    raise DataError(f"Table {table!r}: the frame could not be converted to Arrow.")


def _first_odd_value(series: pd.Series) -> str:
    kinds = series.dropna().map(type)
    if kinds.empty:
        return "the values cannot be stored"
    common = kinds.mode().iloc[0]
    odd = kinds[kinds != common]
    if odd.empty:
        return f"values of type {common.__name__} cannot be stored"
    row = odd.index[0]
    return (
        f"row {row} holds {series[row]!r} ({odd.iloc[0].__name__}) among {common.__name__} values"
    )


def _column_spec(name: str, series: pd.Series, natural: pa.DataType, table: str) -> Spec:
    kind = _kind(natural)
    if kind == "unsupported":
        raise DataError(
            f"Table {table!r}, column {name!r}: values of type {natural} "
            f"(pandas dtype {series.dtype}) cannot be stored; convert them to numbers, text, "
            "booleans, dates, timestamps or decimals first."
        )
    if kind == "category":
        dtype = series.dtype
        categories = pd.Series(dtype.categories)
        value = _column_spec(name, categories, natural.value_type, table)
        texts = pa.array(categories, from_pandas=True).cast(pa.string()).to_pylist()
        return {"kind": kind, "value": value, "categories": texts, "ordered": bool(dtype.ordered)}
    return {"kind": kind, "arrow": _encode_type(natural), "dtype": _dtype_token(series.dtype)}


def _to_storage(column: pa.ChunkedArray, kind: str, dialect: Dialect) -> pa.ChunkedArray:
    t = column.type
    if pat.is_dictionary(t):
        column = column.cast(t.value_type)
        return _to_storage(column, _kind(t.value_type), dialect)
    target: pa.DataType = t
    if dialect == "sqlite" and kind == "str":
        return column  # bound as Python strings: no need to narrow the offsets
    if kind in ("str", "null"):
        target = pa.string()
    elif kind == "bytes":
        target = pa.binary()
    elif kind == "int":
        if dialect == "sqlite" or t in (pa.uint32(), pa.uint64()):
            target = pa.int64()
        elif t in (pa.int8(), pa.uint8()):
            target = pa.int16()
        elif t == pa.uint16():
            target = pa.int32()
    elif kind == "float":
        target = pa.float64() if dialect == "sqlite" or t.bit_width > 32 else pa.float32()
    elif dialect == "sqlite" and kind == "bool":
        target = pa.int64()
    elif dialect == "sqlite" and kind == "timestamp" and t.tz:
        # ISO text in UTC with a 'Z'; formatting naive values is ~40x faster than zoned ones.
        text = column.cast(pa.timestamp(t.unit)).cast(pa.string())
        return pc.binary_join_element_wise(text, "Z", "")
    elif dialect == "sqlite" and kind in ("date", "timestamp", "decimal"):
        target = pa.string()
    elif kind == "timestamp":
        target = pa.timestamp("us", tz="UTC" if t.tz else None)
    elif kind == "date":
        target = pa.date32()
    return column if column.type == target else column.cast(target)


def frame_to_arrow(
    df: pd.DataFrame, table: str, dialect: Dialect
) -> tuple[pa.Table, dict[str, Spec]]:
    """``df`` as Arrow in the database's storage types, and each column's spec."""
    natural = _arrow_table(df, table)
    specs: dict[str, Spec] = {}
    columns = []
    for name, column in zip(natural.column_names, natural.columns, strict=True):
        spec = _column_spec(name, df[name], column.type, table)
        specs[name] = spec
        try:
            columns.append(_to_storage(column, spec["kind"], dialect))
        except pa.ArrowInvalid as exc:
            raise DataError(
                f"Table {table!r}, column {name!r}: {exc}. "
                + (
                    "PostgreSQL keeps timestamps to the microsecond; round them first "
                    "(series.dt.floor('us'))."
                    if spec["kind"] == "timestamp"
                    else "Convert the column so that every value fits the database type."
                )
            ) from None
    return pa.Table.from_arrays(columns, names=natural.column_names), specs


# -- reading ---------------------------------------------------------------------------------


def _unwrap(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """PostgreSQL ``numeric`` (and types Arrow lacks) arrive as opaque text: use the text."""
    if isinstance(column.type, pa.OpaqueType):
        return pa.chunked_array([c.storage for c in column.chunks], column.type.storage_type)
    return column


def _opaque(t: pa.DataType) -> bool:
    return isinstance(t, pa.OpaqueType)


def _string_like(t: pa.DataType) -> bool:
    return bool(pat.is_string(t) or pat.is_large_string(t) or pat.is_string_view(t))


def _cast(column: pa.ChunkedArray, natural: pa.DataType) -> pa.ChunkedArray:
    if column.type == natural or (_string_like(column.type) and _string_like(natural)):
        return column
    return column.cast(natural)


def _decimals(column: pa.ChunkedArray, scale: int | None = None) -> pd.Series:
    """Exact :class:`~decimal.Decimal` objects from the database's decimal text, with the
    column's recorded scale (PostgreSQL drops trailing zeros of an unconstrained NUMERIC)."""
    texts = column.cast(pa.string()).to_pylist()
    if scale is None:
        return pd.Series([None if v is None else Decimal(v) for v in texts], dtype=object)
    step = Decimal(1).scaleb(-scale)
    return pd.Series(
        [None if v is None else Decimal(v).quantize(step) for v in texts], dtype=object
    )


def _nullable(dtype: Any) -> Any:
    """The pandas nullable dtype for a numpy int or bool dtype (when the column has NULLs)."""
    if pd.api.types.is_bool_dtype(dtype):
        return pd.BooleanDtype()
    return pd.api.types.pandas_dtype(str(dtype).capitalize())


def _values(column: pa.ChunkedArray, spec: Spec) -> pd.Series:
    natural = decode_type(spec["arrow"])
    dtype = _token_dtype(spec["dtype"], natural)
    if spec["kind"] == "decimal" and not isinstance(dtype, pd.ArrowDtype):
        return _decimals(column, natural.scale)
    column = _cast(column, natural)
    if isinstance(dtype, pd.ArrowDtype):
        return pd.Series(pd.arrays.ArrowExtensionArray(column))
    if hasattr(dtype, "__from_arrow__"):
        return pd.Series(dtype.__from_arrow__(column))
    if dtype == np.dtype(object):
        return pd.Series(column.to_pylist(), dtype=object)
    series = column.to_pandas()
    if series.dtype == dtype:
        return series
    if column.null_count and (pd.api.types.is_integer_dtype(dtype) or dtype == np.dtype(bool)):
        return pd.Series(_nullable(dtype).__from_arrow__(column))
    return series.astype(dtype)


def _category(column: pa.ChunkedArray, spec: Spec) -> pd.Series:
    value = spec["value"]
    values = _values(column, value)
    texts = pa.chunked_array([pa.array(spec["categories"], pa.string())])
    categories = pd.Index(_values(texts, value))
    dtype = pd.CategoricalDtype(categories, ordered=spec["ordered"])
    return pd.Series(pd.Categorical(values, dtype=dtype))


def _restore(column: pa.ChunkedArray, spec: Spec) -> pd.Series:
    return _category(column, spec) if spec["kind"] == "category" else _values(column, spec)


def _wanted_dtype(spec: Spec) -> Any:
    if spec["kind"] in ("category", "decimal"):
        return None  # always rebuilt column by column
    return _token_dtype(spec["dtype"], decode_type(spec["arrow"]))


def to_frame(table: pa.Table, specs: dict[str, Spec] | None = None) -> pd.DataFrame:
    """A DataFrame from what the database returned, with the recorded dtypes where known.

    The common case — columns that already arrive in their recorded Arrow type — costs one
    ``to_pandas``; only columns whose pandas dtype differs are rebuilt.
    """
    specs = specs or {}
    returned = [field.type for field in table.schema]
    raw = [_unwrap(c) for c in table.columns]
    names = table.column_names
    cast = [
        _cast(c, decode_type(specs[n]["arrow"]))
        if n in specs and specs[n]["kind"] not in ("category", "decimal")
        else c
        for n, c in zip(names, raw, strict=True)
    ]
    if any(a is not b for a, b in zip(cast, table.columns, strict=True)):
        table = pa.Table.from_arrays(cast, names=names)
    frame = table.to_pandas()
    dtypes = list(frame.dtypes)
    rebuilt: dict[str, pd.Series] = {}
    for position, name in enumerate(names):
        spec = specs.get(name)
        arrow_type = returned[position]
        if spec is None and storage_kind(arrow_type) == "decimal" and _opaque(arrow_type):
            rebuilt[name] = _decimals(raw[position])
        elif spec is not None and (
            (wanted := _wanted_dtype(spec)) is None or dtypes[position] != wanted
        ):
            rebuilt[name] = _restore(raw[position], spec)
    for name, series in rebuilt.items():
        frame[name] = series
    return frame


def decimals_as_floats(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each column of :class:`~decimal.Decimal` values (PostgreSQL ``numeric``,
    such as ``avg`` of integers) as ``float64``, as :func:`pandas.read_sql_query` gives them:
    for code that computes and charts with floats rather than exact decimals."""
    positions = [
        i
        for i, dtype in enumerate(frame.dtypes)
        if dtype == np.dtype(object)
        and pd.api.types.infer_dtype(frame.iloc[:, i], skipna=True) == "decimal"
    ]
    if not positions:
        return frame
    frame = frame.copy(deep=False)
    for i in positions:
        frame.isetitem(i, frame.iloc[:, i].astype("float64"))
    return frame


def widen_decimal(before: Spec, spec: Spec) -> Spec:
    """``before`` with the larger of both decimal scales, so appended digits are kept."""
    old, new = decode_type(before["arrow"]), decode_type(spec["arrow"])
    if spec["kind"] != "decimal" or new.scale <= old.scale:
        return before
    precision = min(38, max(old.precision - old.scale, new.precision - new.scale) + new.scale)
    return {**before, "arrow": _encode_type(pa.decimal128(precision, new.scale))}


def dtype_label(spec: Spec) -> str:
    """The pandas dtype a column is read back as, for ``wb.describe``."""
    if spec["kind"] == "category":
        return "category"
    dtype = _token_dtype(spec["dtype"], decode_type(spec["arrow"]))
    if spec["kind"] in ("decimal", "date") and dtype == np.dtype(object):
        return f"object ({'Decimal' if spec['kind'] == 'decimal' else 'date'})"
    return str(dtype)
