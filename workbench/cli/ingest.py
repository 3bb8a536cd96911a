"""`workbench ingest SOURCE --table T` and `workbench sources`: load data through a source."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from workbench.cli.common import workbench_of
from workbench.cli.output import Column, JsonOption, print_rows

__all__ = ["ingest_command", "parse_options", "sources_command"]

console = Console()

_MODES = ("create", "append", "replace", "upsert")


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``k=v`` pairs as source options: a repeated key makes a list, ``[...]``/``{...}`` is JSON."""
    from workbench.sources.errors import SourceOptionError

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SourceOptionError(f"--option {pair!r}: write it as NAME=VALUE, e.g. path=a.csv.")
        value: Any = raw
        if raw[:1] in ("[", "{"):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise SourceOptionError(
                    f"--option {key}: the value is not valid JSON ({exc})."
                ) from None
        if key in options:
            previous = options[key]
            options[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            options[key] = value
    return options


def ingest_command(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Source name (see `workbench sources`).")],
    table: Annotated[
        str | None, typer.Option("--table", "-t", help="Table to write (optional for flights).")
    ] = None,
    mode: Annotated[str, typer.Option(help="create, append, replace or upsert.")] = "create",
    key: Annotated[
        list[str] | None, typer.Option(help="Key column for upsert (repeat for several).")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Source option NAME=VALUE (repeatable)."),
    ] = None,
    team: Annotated[
        str | None,
        typer.Option(help="Team mode: the team a new table belongs to (see docs/security.md)."),
    ] = None,
    shared: Annotated[
        bool, typer.Option("--shared", help="Team mode: every user may read the table.")
    ] = False,
) -> None:
    """Read SOURCE and write it to a table, all or nothing, with a progress bar."""
    from workbench.sources.errors import SourceOptionError
    from workbench.sources.ingest import ingest

    if mode not in _MODES:
        raise SourceOptionError(f"--mode {mode!r} is not one of {', '.join(_MODES)}.")
    options = parse_options(option or [])
    with workbench_of(ctx) as wb:
        result = ingest(
            source,
            table,
            mode=mode,
            key=key or None,
            progress=True,
            workbench=wb,
            team=team,
            shared=shared,
            **options,
        )
    if result.skipped:
        console.print(f"[yellow]skipped {len(result.skipped)} input(s)[/] (reasons logged above)")
    if not result.tables:
        console.print(f"{escape(source)}: no rows to write; nothing changed.")
    for name, rows in result.tables.items():
        console.print(f"{escape(name)}: {rows:,} rows ({mode})")
    console.print(f"done in {result.seconds:.1f} s")


def sources_command(as_json: JsonOption = False) -> None:
    """List the data sources: built-in and from installed plugins."""
    from workbench.sources.registry import available_sources

    rows = [
        {"source": name, "description": str(getattr(source, "description", "")) or None}
        for name, source in sorted(available_sources().items())
    ]
    columns = (Column("source", "source", identifier=True), Column("description", "description"))
    print_rows(rows, columns, as_json=as_json, title="Sources")
