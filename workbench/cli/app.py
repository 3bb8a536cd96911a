"""The `workbench` command: parses arguments, calls the API, renders with Rich.

Every failure the user can fix is a WorkbenchError: printed as one message, no traceback,
non-zero exit. Heavy modules are imported inside commands so `workbench --help` is fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from workbench.cli import dashboards as dashboards_commands
from workbench.cli import ingest as ingest_commands
from workbench.cli import jobs as jobs_commands
from workbench.cli import plugins as plugins_commands
from workbench.cli import runs as runs_commands
from workbench.cli import scheduler as scheduler_commands
from workbench.cli import teams as teams_commands
from workbench.cli import users as users_commands
from workbench.cli.common import console, err_console, settings_of
from workbench.core.version import __version__

if TYPE_CHECKING:
    from sqlalchemy import Engine
from workbench.core.config import ENV_PREFIX, SECRET_FIELDS, Settings, load_settings, mask_url
from workbench.core.errors import WorkbenchError
from workbench.core.production import ensure_production_safe

__all__ = ["app", "main"]

app = typer.Typer(
    name="workbench",
    help="Workbench: governed data, scheduled notebooks and dashboards on Jupyter.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Inspect and migrate the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    runs_commands.run_command
)
app.add_typer(runs_commands.runs_app, name="runs")
app.add_typer(runs_commands.notebooks_app, name="notebooks")
app.add_typer(runs_commands.secrets_app, name="secrets")
app.add_typer(plugins_commands.app, name="plugins")
app.add_typer(dashboards_commands.app, name="dashboards")
app.command("ingest")(ingest_commands.ingest_command)
app.command("sources")(ingest_commands.sources_command)
app.add_typer(jobs_commands.app, name="jobs")
app.command("scheduler")(scheduler_commands.scheduler)
app.command("worker")(scheduler_commands.worker)
app.add_typer(users_commands.app, name="users")
app.add_typer(teams_commands.app, name="teams")


# Commands that must run before the configuration is complete (they create it).
_SETUP_COMMANDS = frozenset({"init", "version"})


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Load the settings once, and refuse unsafe production settings for every command."""
    from workbench.ops.logging import configure_logging

    settings = load_settings()
    if ctx.invoked_subcommand not in _SETUP_COMMANDS:
        ensure_production_safe(settings)
    configure_logging(settings)
    ctx.obj = settings


@app.command()
def version() -> None:
    """Print the Workbench version."""
    console.print(f"workbench {__version__}")


@app.command()
def init(
    ctx: typer.Context,
    admin_username: Annotated[str, typer.Option(help="Name of the first admin account.")] = "admin",
    admin_password_file: Annotated[
        Path | None,
        typer.Option(
            help="Read the admin password from this file instead of generating one.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
) -> None:
    """Create the home folder, a secret key, the database schema and the first admin."""
    from workbench.api import init as do_init

    password = None
    if admin_password_file is not None:
        password = admin_password_file.read_text(encoding="utf-8").strip()
    result = do_init(settings_of(ctx), admin_username=admin_username, admin_password=password)
    lines = [
        f"home:        {result.home}",
        f"database:    {result.database}",
        f"schema:      at {result.revision}",
        "secret key:  " + ("generated (mode 0600)" if result.secret_key_generated else "kept"),
    ]
    if result.admin_created:
        lines.append(f"admin:       {result.admin_username} (created)")
    else:
        lines.append(f"admin:       {result.admin_username} (exists, unchanged)")
    console.print(Panel("\n".join(escape(line) for line in lines), title="Workbench initialised"))
    if result.admin_password:
        console.print(
            Panel(
                f"[bold]{escape(result.admin_password)}[/bold]",
                title=f"One-time password for {escape(result.admin_username)}",
                subtitle="shown once: store it now",
            )
        )


@app.command()
def doctor(ctx: typer.Context) -> None:
    """Show the effective configuration (secrets masked) and check every service."""
    from workbench.db.engine import create_workbench_engine
    from workbench.ops.health import run_checks

    settings = settings_of(ctx)
    console.print(_settings_table(settings))
    engine = create_workbench_engine(settings)
    try:
        checks = run_checks(settings, engine)
    finally:
        engine.dispose()
    key, source = settings.effective_secret_key()
    checks_table = Table(title="Checks")
    checks_table.add_column("check")
    checks_table.add_column("status")
    checks_table.add_column("detail")
    key_ok = key is not None
    checks_table.add_row(
        "secret key",
        "[green]ok[/]" if key_ok else "[red]missing[/]",
        escape(f"from {source}" if key_ok else "run `workbench init`"),
    )
    for check in checks:
        checks_table.add_row(
            check.name, "[green]ok[/]" if check.ok else "[red]failed[/]", escape(check.detail)
        )
    console.print(checks_table)
    if not key_ok or not all(c.ok for c in checks):
        raise typer.Exit(1)


def _settings_table(settings: Settings) -> Table:
    table = Table(title="Settings")
    table.add_column("setting")
    table.add_column("value")
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if name == "database_url":
            shown = mask_url(settings.effective_database_url())
        elif name in SECRET_FIELDS:
            shown = "***" if value is not None and value.get_secret_value() else "(not set)"
            if name == "redis_url" and value is not None:
                shown = mask_url(value.get_secret_value())
        elif name == "home":
            shown = str(settings.home_path)
        else:
            shown = str(value)
        table.add_row(ENV_PREFIX + name.upper(), escape(shown))
    return table


def _engine(ctx: typer.Context) -> Engine:
    from workbench.db.engine import create_workbench_engine

    return create_workbench_engine(settings_of(ctx))


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Upgrade the schema (default: to the newest revision)."""
    from workbench.db import migrate

    engine = _engine(ctx)
    try:
        migrate.upgrade(engine, revision)
        console.print(f"schema at {migrate.current_revision(engine)}")
    finally:
        engine.dispose()


@db_app.command("downgrade")
def db_downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base'.")],
) -> None:
    """Downgrade the schema to REVISION ('base' drops every Workbench table)."""
    from workbench.db import migrate

    engine = _engine(ctx)
    try:
        migrate.downgrade(engine, revision)
        console.print(f"schema at {migrate.current_revision(engine) or 'base'}")
    finally:
        engine.dispose()


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Print the schema revision of the database and whether it is the newest."""
    from workbench.db import migrate

    engine = _engine(ctx)
    try:
        status = migrate.migration_status(engine)
    finally:
        engine.dispose()
    state = "at head" if status.at_head else f"head is {status.head}"
    console.print(f"{status.current or 'base (empty)'} ({state})")


@db_app.command("history")
def db_history() -> None:
    """List the shipped migrations, newest first."""
    from workbench.db import migrate

    table = Table()
    table.add_column("revision")
    table.add_column("revises")
    table.add_column("change")
    for rev in migrate.history():
        table.add_row(rev.revision, rev.down_revision or "-", escape(rev.message.splitlines()[0]))
    console.print(table)


@db_app.command("check")
def db_check(ctx: typer.Context) -> None:
    """Fail unless the database is at head and its schema matches the models exactly."""
    from workbench.core.errors import MigrationError
    from workbench.db import migrate

    engine = _engine(ctx)
    try:
        status = migrate.migration_status(engine)
        if not status.at_head:
            raise MigrationError(
                f"The database is at {status.current or 'base'}, the newest migration is "
                f"{status.head}; run `workbench db upgrade`."
            )
        differences = migrate.drift(engine)
    finally:
        engine.dispose()
    if differences:
        raise MigrationError(
            "The database schema differs from the models in "
            f"{len(differences)} place(s): {differences[:5]!r}"
        )
    console.print(f"schema at {status.head} and matches the models")


def _add_plugin_commands() -> None:
    """Let plugins add commands once per process (the `register_commands` hook)."""
    global _plugin_commands_added
    if _plugin_commands_added:
        return
    from workbench.plugins.manager import get_plugins

    get_plugins().call("register_commands", app=app)
    _plugin_commands_added = True


_plugin_commands_added = False


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    try:
        _add_plugin_commands()
        app(args=argv, prog_name="workbench")
    except WorkbenchError as exc:
        err_console.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
