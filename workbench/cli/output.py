"""The command line's tables and ``--json``: one description of the fields serves both.

A table never cuts what a user must copy: identifier columns (ids, names, paths, URLs) are
never wrapped or shortened; the prose columns wrap or end in an ellipsis instead, and when the
identifiers alone are wider than the terminal the table is printed wider (a pipe keeps every
character). ``--json`` prints one JSON document on stdout, the same fields with ids in full
and times in ISO 8601 UTC.
"""

from __future__ import annotations

import enum
import json
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from workbench.cli.common import console

__all__ = [
    "Column",
    "JsonOption",
    "json_value",
    "print_json",
    "print_record",
    "print_rows",
    "print_table",
]

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document instead of the table.")
]

_PROSE_FLOOR = 10  # a prose column's longest word keeps this many characters at least


@dataclass(frozen=True)
class Column:
    """One field: its JSON key, its table header, whether it is an identifier (never cut)."""

    key: str
    header: str
    identifier: bool = False
    style: Callable[[Any], str] | None = None


def json_value(value: Any) -> Any:
    """``value`` as JSON: times ISO 8601 UTC, ids and paths as strings, enums by value."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_value(v) for v in value]
    return value


def print_json(document: Any) -> None:
    """One JSON document on stdout and nothing else (no colour, no wrapping)."""
    sys.stdout.write(json.dumps(json_value(document), ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def cell_text(value: Any) -> str:
    """How a table shows ``value``: times in UTC to the second, nothing as ``-``."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        utc = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
        return utc.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(json_value(value), ensure_ascii=False)
    return str(value)


def print_table(table: Table, out: Console | None = None) -> None:
    """Print ``table`` so no ``no_wrap`` column is cut: wider than the terminal if need be."""
    out = out or console
    unbounded = out.options.update_width(100_000)
    needed = 3 if table.show_edge else 1  # one column of slack for rich's rounding
    needed += max(len(table.columns) - 1, 0) if table.box else 0
    for column in table.columns:
        sizes = [Measurement.get(out, unbounded, c) for c in (column.header, *column.cells)]
        if column.no_wrap:
            column.min_width = max(size.maximum for size in sizes)
            needed += column.min_width
        else:  # wraps between words; a longer word ends in an ellipsis
            column.overflow = "ellipsis"
            needed += min(max(size.minimum for size in sizes), _PROSE_FLOOR)
        needed += sum(table.padding[1::2]) if table.padding else 0
    if needed <= out.width:
        out.print(table)
        return
    wide = Console(
        file=out.file,
        width=needed,
        color_system=out.color_system,  # type: ignore[arg-type]
        force_terminal=out.is_terminal,
        no_color=out.no_color,
    )
    wide.print(table)


def print_rows(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    as_json: bool,
    title: str | None = None,
    empty: str | None = None,
) -> None:
    """A listing: a table of ``columns`` (or, with ``as_json``, the rows as a JSON list)."""
    if as_json:
        print_json([dict(row) for row in rows])
        return
    if not rows and empty:
        console.print(empty, highlight=False)
        return
    table = Table(title=escape(title) if title else None)
    for column in columns:
        table.add_column(column.header, no_wrap=column.identifier)
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column.key)
            text = escape(cell_text(value))
            style = column.style(value) if column.style else ""
            cells.append(f"[{style}]{text}[/]" if style else text)
        table.add_row(*cells)
    print_table(table)


def print_record(record: Mapping[str, Any], *, as_json: bool) -> None:
    """One record (a ``show``): field and value lines, values never cut (or JSON)."""
    if as_json:
        print_json(dict(record))
        return
    table = Table(show_header=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", no_wrap=True)
    for name, value in record.items():
        table.add_row(escape(name), escape(cell_text(value)))
    print_table(table)
