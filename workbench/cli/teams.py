"""`workbench teams`: add, list, add-member and remove-member (team mode only)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from workbench.cli.common import console, workbench_of

app = typer.Typer(help="Teams: add, list, add-member, remove-member.", no_args_is_help=True)


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
def list_(ctx: typer.Context) -> None:
    """List teams and their members."""
    from workbench.accounts import api as accounts

    with workbench_of(ctx) as wb:
        teams = accounts.list_teams(workbench=wb)
    table = Table()
    table.add_column("team")
    table.add_column("members")
    table.add_column("description")
    for team in teams:
        table.add_row(
            escape(team.name),
            escape(", ".join(team.members)) or "-",
            escape(team.description or ""),
        )
    console.print(table)


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
