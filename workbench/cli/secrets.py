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

from workbench.cli.common import WorkbenchTyper, console, workbench_of
from workbench.cli.errors import UsageError
from workbench.cli.output import Column, JsonOption, print_rows

__all__ = ["app"]

app = WorkbenchTyper(help="Secrets notebooks use as `secret:NAME`.", no_args_is_help=True)

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
    as_json: JsonOption = False,
) -> None:
    """The secrets you may use, by name and team (never their values)."""
    from workbench.runs.secrets import list_secrets

    with workbench_of(ctx) as wb:
        found = list_secrets(wb, team=team)
    rows = [
        {
            "name": info.name,
            "team": info.team if as_json else _team_shown(info.team_id, info.team),
            "global": info.team_id is None,
        }
        for info in found
    ]
    columns = (Column("name", "name", identifier=True), Column("team", "team", identifier=True))
    empty = "No secrets yet: `workbench secrets set NAME` (an admin, in team mode)."
    print_rows(rows, columns, as_json=as_json, empty=empty)


def _team_shown(team_id: object, team: str | None) -> str:
    return "(global)" if team_id is None else team or "(one of your teams)"


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
