"""`workbench plugins`: what is installed, what it provides, and what failed."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(help="List plugins, their hooks and their status.", no_args_is_help=True)
console = Console()

_STATUS_STYLE = {"ok": "green", "failed": "red", "not allowed": "yellow"}


@app.command("list")
def list_plugins() -> None:
    """Show every plugin: built-in or installed, version, hooks and status (with errors)."""
    from workbench.plugins.manager import get_plugins

    table = Table(title="Plugins")
    for column in ("plugin", "version", "kind", "status", "hooks / error"):
        table.add_column(column)
    for info in get_plugins().plugin_list():
        style = _STATUS_STYLE.get(info.status, "white")
        detail = info.error if info.error else ", ".join(info.hooks)
        table.add_row(
            escape(info.name),
            escape(info.version),
            "built-in" if info.builtin else "installed",
            f"[{style}]{info.status}[/]",
            escape(detail),
        )
    console.print(table)
