"""`workbench users`: add, list, disable, passwd and rotate-credentials.

Generated passwords are shown once, in a panel, and never logged; a chosen one is read from
a file (``--password-file``) or typed at a hidden prompt (``--prompt``), never an argument.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.panel import Panel

from workbench.cli.common import WorkbenchTyper, console, workbench_of, write_private
from workbench.cli.errors import UsageError
from workbench.cli.output import Column, JsonOption, print_rows
from workbench.core.roles import Role

app = WorkbenchTyper(
    help="Accounts: add, list, disable, passwd, rotate-credentials.", no_args_is_help=True
)

PasswordFile = Annotated[
    Path | None,
    typer.Option(
        help="Read the password from this file instead of generating one.",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]
Prompt = Annotated[bool, typer.Option("--prompt", help="Type the password at a hidden prompt.")]


def _chosen_password(password_file: Path | None, prompt: bool) -> str | None:
    if password_file is not None:
        return password_file.read_text(encoding="utf-8").rstrip("\r\n")
    if prompt:
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    return None


def _show_once(username: str, password: str) -> None:
    console.print(
        Panel(
            f"[bold]{escape(password)}[/bold]",
            title=f"One-time password for {escape(username)}",
            subtitle="shown once: store it now",
        )
    )


@app.command("add")
def add(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="Letters, digits, '-' and '_'.")],
    role: Annotated[Role, typer.Option(help="admin, analyst or viewer.")] = Role.ANALYST,
    team: Annotated[
        list[str] | None, typer.Option("--team", help="Add to this team; repeatable.")
    ] = None,
    password_file: PasswordFile = None,
    prompt: Prompt = False,
) -> None:
    """Create an account (in team mode also its own database login)."""
    from workbench.accounts import api as accounts

    password = _chosen_password(password_file, prompt)
    with workbench_of(ctx) as wb:
        account = accounts.add_user(
            username, role=role, password=password, teams_=tuple(team or ()), workbench=wb
        )
    login = " with a database login" if account.user.db_role else ""
    console.print(f"user {escape(username)} ({role.value}) created{login}")
    if account.password:
        _show_once(username, account.password)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List accounts with their role, teams and state."""
    from workbench.accounts import api as accounts

    with workbench_of(ctx) as wb:
        users = accounts.list_users(workbench=wb)
    rows = []
    for user in users:
        state = "active" if user.is_active else "disabled"
        locked = user.locked_until if user.is_active else None
        if locked is not None and not as_json:
            state = "locked until " + locked.strftime("%Y-%m-%d %H:%M UTC")
        rows.append(
            {
                "user": user.username,
                "role": user.role.value,
                "state": "locked" if locked is not None and as_json else state,
                "locked_until": locked,
                "teams": list(user.teams),
                "database_login": user.has_database_login,
                "last_login_at": user.last_login_at,
            }
        )
    print_rows(rows, _USER_COLUMNS, as_json=as_json)


_USER_COLUMNS = (  # the table names the lock in its state; JSON has locked_until apart
    Column("user", "user", identifier=True),
    Column("role", "role"),
    Column("state", "state"),
    Column("teams", "teams"),
    Column("database_login", "database login"),
    Column("last_login_at", "last sign-in (UTC)"),
)


@app.command("disable")
def disable(
    ctx: typer.Context, username: Annotated[str, typer.Argument(help="The account.")]
) -> None:
    """Disable sign-in and the database login; the user's sessions (database and dashboards)
    end at once."""
    from workbench.accounts import api as accounts

    with workbench_of(ctx) as wb:
        accounts.disable_user(username, workbench=wb)
    console.print(f"user {escape(username)} disabled")


@app.command("passwd")
def passwd(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="The account.")],
    password_file: PasswordFile = None,
    prompt: Prompt = False,
) -> None:
    """Set a new sign-in password (generated unless given); also lifts a sign-in lock and ends
    the user's dashboard sessions."""
    from workbench.accounts import api as accounts

    password = _chosen_password(password_file, prompt)
    with workbench_of(ctx) as wb:
        generated = accounts.set_password(username, password, workbench=wb)
    console.print(f"password of {escape(username)} changed")
    if generated:
        _show_once(username, generated)


@app.command("rotate-credentials")
def rotate_credentials(
    ctx: typer.Context, username: Annotated[str, typer.Argument(help="The account.")]
) -> None:
    """Give the user's database login a new random password (team mode only).

    The password is stored encrypted and never shown; connections made for the user pick it
    up, and the user's dashboard sessions end. Creates the login if the account has none yet
    (e.g. the first admin).
    """
    from workbench.accounts import api as accounts

    with workbench_of(ctx) as wb:
        accounts.rotate_credentials(username, workbench=wb)
    console.print(f"database credentials of {escape(username)} rotated")


@app.command("connection-url")
def connection_url(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="The account.")],
    file: Annotated[
        Path, typer.Option("--file", help="Where to write the URL (mode 0600).", dir_okay=False)
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Write USERNAME's own database URL (their login and password) to FILE, never printed.

    For an analyst's laptop or CI outside the hub: give them FILE and they set
    WORKBENCH_DATABASE_URL_FILE to it (then `workbench lab` acts as them). Team mode only;
    rotating the user's credentials makes the file stale.
    """
    from workbench.accounts import api as accounts

    with workbench_of(ctx) as wb:
        url = accounts.connection_url(username, workbench=wb)
    target = file.expanduser()
    if not target.parent.is_dir():
        raise UsageError(f"The folder of {target} does not exist; create it first.")
    write_private(target, url + "\n", force=force)
    console.print(
        f"wrote the database URL of {escape(username)} to {escape(str(target))} (mode 0600); "
        "give it to them only, as WORKBENCH_DATABASE_URL_FILE",
        highlight=False,
    )
