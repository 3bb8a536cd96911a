"""`workbench secrets set|list|delete`: the secrets notebooks use as ``secret:NAME``.

Setting and deleting encrypt with the workbench key, so they are an admin's acts with the
service's configuration; ``--team T`` makes the secret team T's, without it is global. `list`
works from a user's own login too: the names (never the values) of their teams' and the
global secrets.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from workbench.cli.common import console, workbench_of
from workbench.cli.errors import UsageError

__all__ = ["app"]

app = typer.Typer(help="Secrets notebooks use as `secret:NAME`.", no_args_is_help=True)

TeamOption = Annotated[
    str | None,
    typer.Option("--team", help="The team the secret belongs to (default: global, every team)."),
]


@app.command("set")
def secrets_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The secret's name, used as `secret:NAME`.")],
    value_file: Annotated[
        Path | None,
        typer.Option(help="Read the value from this file (else stdin or a hidden prompt).",
                     exists=True, dir_okay=False, readable=True),
    ] = None,
    team: TeamOption = None,
) -> None:  # fmt: skip
    """Store a secret of a team, or a global one (the value is never printed)."""
    from workbench.runs.params import SECRET_NAME
    from workbench.runs.secrets import set_secret

    if not SECRET_NAME.match(name):
        raise UsageError("A secret name is letters, digits, '_', '.' or '-' (at most 200).")
    if value_file is not None:
        value = value_file.read_text(encoding="utf-8").strip()
    elif not sys.stdin.isatty():
        value = sys.stdin.read().strip()
    else:
        value = typer.prompt("Value", hide_input=True)
    if not value:
        raise UsageError("The secret's value is empty; nothing stored.")
    with workbench_of(ctx) as wb:
        set_secret(wb, name, value, team=team)
    scope = f" for team {escape(team)}" if team else " (global)"
    console.print(f"secret {escape(name)} stored{scope}")


@app.command("list")
def secrets_list(
    ctx: typer.Context,
    team: Annotated[
        str | None,
        typer.Option("--team", help="Only those a run of this team may use (its and global)."),
    ] = None,
) -> None:
    """The secrets you may use, by name and team (never their values)."""
    from workbench.runs.secrets import list_secrets

    with workbench_of(ctx) as wb:
        found = list_secrets(wb, team=team)
    if not found:
        console.print("No secrets; an admin stores one with `workbench secrets set NAME`.")
        return
    table = Table()
    table.add_column("name")
    table.add_column("team")
    for info in found:
        shown = "(global)" if info.team_id is None else info.team or "(one of your teams)"
        table.add_row(escape(info.name), escape(shown))
    console.print(table)


@app.command("delete")
def secrets_delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The secret's name.")],
    team: TeamOption = None,
) -> None:
    """Remove a stored secret (the team's with --team, else the global one)."""
    from workbench.runs.secrets import delete_secret

    with workbench_of(ctx) as wb:
        delete_secret(wb, name, team=team)
    console.print(f"secret {escape(name)} deleted")
