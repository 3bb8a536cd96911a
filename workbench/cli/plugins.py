"""`workbench plugins`: what is installed, what it provides, and what failed."""

from __future__ import annotations

from rich.console import Console

from workbench.cli.common import WorkbenchTyper
from workbench.cli.output import Column, JsonOption, print_rows

app = WorkbenchTyper(help="List plugins, their hooks and their status.", no_args_is_help=True)
console = Console()

_STATUS_STYLE = {"ok": "green", "failed": "red", "not allowed": "yellow"}


@app.command("list")
def list_plugins(as_json: JsonOption = False) -> None:
    """Show every plugin: built-in or installed, version, hooks and status (with errors)."""
    from workbench.plugins.manager import get_plugins

    rows = [
        {
            "plugin": info.name,
            "version": info.version,
            "kind": "built-in" if info.builtin else "installed",
            "status": info.status,
            "hooks": list(info.hooks),
            "error": info.error or None,
        }
        for info in get_plugins().plugin_list()
    ]
    if not as_json:
        for row in rows:
            row["hooks"] = row.pop("error") or row["hooks"]
    columns = (
        Column("plugin", "plugin", identifier=True),
        Column("version", "version", identifier=True),
        Column("kind", "kind"),
        Column("status", "status", style=lambda s: _STATUS_STYLE.get(s, "white")),
        Column("hooks", "hooks / error"),
    )
    print_rows(rows, columns, as_json=as_json, title="Plugins")
