"""The ``files`` source: CSV, Parquet and JSON lines from local paths, globs or fsspec URLs.

Every file is read by Arrow (type inference over the whole file, compression by extension)
and must have the same columns as the first, so several files make one table. Errors name
the file and, for a malformed CSV row, its row number.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from fsspec.core import OpenFile
from pydantic import Field

from workbench.sources.base import Item, Options, Source
from workbench.sources.errors import SourceError, SourceOptionError
from workbench.sources.paths import expand_paths, label

__all__ = ["FilesOptions", "FilesSource"]

Format = Literal["csv", "parquet", "jsonl"]

_EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")
_ROW = re.compile(r"Row #(\d+): ")


class FilesOptions(Options):
    path: str | list[str] = Field(description="File, glob or fsspec URL (or a list of them).")
    format: Format | None = Field(None, description="csv, parquet or jsonl; default: by extension.")
    delimiter: str = Field(",", min_length=1, max_length=1, description="CSV field separator.")
    encoding: str = Field("utf8", description="CSV text encoding.")
    file_column: str | None = Field(None, description="Add a column with each row's file.")


class FilesSource(Source[FilesOptions]):
    """CSV, Parquet and JSON-lines files; several files (a glob) make one table."""

    name = "files"
    description = "CSV, Parquet or JSON-lines files: local paths, globs or fsspec URLs."
    options_model = FilesOptions

    def iter_batches(self, options: FilesOptions) -> Iterator[Item]:
        first: tuple[str, list[str]] | None = None
        for file in expand_paths(options.path):
            name = label(file)
            table = _read_file(file, name, options)
            if first is None:
                first = (name, table.column_names)
            elif sorted(table.column_names) != sorted(first[1]):
                raise SourceError(
                    f"{name}: its columns {table.column_names} differ from those of "
                    f"{first[0]} {first[1]}; files ingested together must have the same columns."
                )
            else:
                table = table.select(first[1])
            if options.file_column:
                table = table.append_column(
                    options.file_column, pa.array([name] * table.num_rows, pa.string())
                )
            yield table

    def estimate_rows(self, options: FilesOptions) -> int | None:
        """Known up front for Parquet only (from the footers); None otherwise."""
        files = expand_paths(options.path)
        if any(_format(label(f), options.format) != "parquet" for f in files):
            return None
        total = 0
        for file in files:
            with file as fh:
                total += pq.ParquetFile(fh).metadata.num_rows
        return total


def _format(name: str, chosen: Format | None) -> Format:
    if chosen is not None:
        return chosen
    stem = name.lower()
    for suffix in _COMPRESSIONS:
        stem = stem.removesuffix(suffix)
    for extension, fmt in _EXTENSIONS.items():
        if stem.endswith(extension):
            return fmt
    raise SourceOptionError(
        f"{name}: cannot tell the format from the file name; pass format=csv, parquet or jsonl."
    )


def _read_file(file: OpenFile, name: str, options: FilesOptions) -> pa.Table:
    fmt = _format(name, options.format)
    try:
        with file as fh:
            if fmt == "parquet":
                return pq.read_table(fh)
            if fmt == "jsonl":
                return pajson.read_json(fh)
            return _read_csv(fh, name, options)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        detail = _describe(exc)
        where = f"{name}, " if detail.startswith("line ") else f"{name}: "
        raise SourceError(where + detail) from None
    except OSError as exc:
        raise SourceError(f"{name}: cannot be read ({exc.strerror or exc}).") from None


def _read_csv(fh: object, name: str, options: FilesOptions) -> pa.Table:
    read = pacsv.ReadOptions(encoding=options.encoding)
    parse = pacsv.ParseOptions(delimiter=options.delimiter)
    try:
        return pacsv.read_csv(fh, read_options=read, parse_options=parse)
    except pa.ArrowInvalid as exc:
        if _ROW.search(str(exc)) or not hasattr(fh, "seek"):
            raise
        # The threaded reader does not number rows; read again in order to name the row.
        fh.seek(0)
        read.use_threads = False
        return pacsv.read_csv(fh, read_options=read, parse_options=parse)


def _describe(exc: Exception) -> str:
    """Arrow's message, with ``Row #N`` turned into ``line N`` (the header is line 1)."""
    message = str(exc).strip().removeprefix("CSV parse error: ")
    match = _ROW.search(message)
    if match:
        message = f"line {match.group(1)}: " + _ROW.sub("", message, count=1)
    return message
