"""`workbench teams`: add, list, add-member and remove-member (team mode only)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from workbench.cli.common import WorkbenchTyper, console, workbench_of
from workbench.cli.output import Column, JsonOption, print_rows

app = WorkbenchTyper(help="Teams: add, list, add-member, remove-member.", no_args_is_help=True)


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Team name.")],
    description: Annotated[str | None, typer.Option(help="What the team does.")] = None,
) -> None:
    """Create a team."""
    from workbench.accounts import api as accounts

    with workbench_of(ctx) as wb:
        accounts.add_team(name, description, workbench=wb)
    console.print(f"team {escape(name)} created")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List teams and their members."""
    from workbench.accounts import api as accounts

    with workbench_of(ctx) as wb:
        teams = accounts.list_teams(workbench=wb)
    rows = [
        {"team": t.name, "members": list(t.members), "description": t.description or None}
        for t in teams
    ]
    columns = (
        Column("team", "team", identifier=True),
        Column("members", "members"),
        Column("description", "description"),
    )
    print_rows(rows, columns, as_json=as_json, empty="No teams yet: `workbench teams add NAME`.")


@app.command("add-member")
def add_member(
    ctx: typer.Context,
    team: Annotated[str, typer.Argument(help="Team name.")],
    username: Annotated[str, typer.Argument(help="The account.")],
) -> None:
    """Add a user to a team: they see the team's rows from their next statement on."""
    from workbench.accounts import api as accounts

    with workbench_of(ctx) as wb:
        accounts.add_member(team, username, workbench=wb)
    console.print(f"{escape(username)} added to {escape(team)}")


@app.command("remove-member")
def remove_member(
    ctx: typer.Context,
    team: Annotated[str, typer.Argument(help="Team name.")],
    username: Annotated[str, typer.Argument(help="The account.")],
) -> None:
    """Remove a user from a team: the team's rows disappear from their sessions at once."""
    from workbench.accounts import api as accounts

    with workbench_of(ctx) as wb:
        accounts.remove_member(team, username, workbench=wb)
    console.print(f"{escape(username)} removed from {escape(team)}")
