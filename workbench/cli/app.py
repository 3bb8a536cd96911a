"""The `workbench` command: parses arguments, calls the API, renders with Rich.

Every failure the user can fix is a WorkbenchError: printed as one message, no traceback,
non-zero exit. Heavy modules are imported inside commands so `workbench --help` is fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from workbench.cli import backup as backup_commands
from workbench.cli import dashboards as dashboards_commands
from workbench.cli import deploy as deploy_commands
from workbench.cli import hub as hub_commands
from workbench.cli import ingest as ingest_commands
from workbench.cli import jobs as jobs_commands
from workbench.cli import lab as lab_commands
from workbench.cli import plugins as plugins_commands
from workbench.cli import runs as runs_commands
from workbench.cli import scheduler as scheduler_commands
from workbench.cli import secrets as secrets_commands
from workbench.cli import teams as teams_commands
from workbench.cli import users as users_commands
from workbench.cli.common import WorkbenchTyper, console, err_console, settings_of
from workbench.cli.output import print_table
from workbench.cli.params import normalize_parameter_args
from workbench.core.config import ENV_PREFIX, SECRET_FIELDS, Settings, load_settings, mask_url
from workbench.core.errors import WorkbenchError
from workbench.core.production import ensure_production_safe
from workbench.core.startup import skip_slow_optional_imports
from workbench.core.version import __version__

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["app", "main"]

app = WorkbenchTyper(
    name="workbench",
    help="Workbench: governed data, scheduled notebooks and dashboards on Jupyter.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = WorkbenchTyper(help="Inspect and migrate the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.command("run")(runs_commands.run_command)
app.add_typer(runs_commands.runs_app, name="runs")
app.add_typer(runs_commands.notebooks_app, name="notebooks")
app.add_typer(secrets_commands.app, name="secrets")
app.add_typer(plugins_commands.app, name="plugins")
app.add_typer(dashboards_commands.app, name="dashboards")
app.command("lab")(lab_commands.lab)
app.add_typer(hub_commands.app, name="hub")
app.command("ingest")(ingest_commands.ingest_command)
app.command("sources")(ingest_commands.sources_command)
app.add_typer(jobs_commands.app, name="jobs")
app.command("scheduler")(scheduler_commands.scheduler)
app.command("worker")(scheduler_commands.worker)
app.add_typer(users_commands.app, name="users")
app.add_typer(teams_commands.app, name="teams")
app.add_typer(backup_commands.app, name="backup")
app.add_typer(deploy_commands.app, name="deploy")


# Commands that must run before the configuration is complete (they create it).
_SETUP_COMMANDS = frozenset({"init", "version"})
# Commands that make the production check themselves (doctor reports it as a failed check;
# `hub` checks per subcommand, its single-user server being an analyst's seat).
_SELF_CHECKING_COMMANDS = frozenset({"doctor", "hub"})
# The analysts' seats: they run without the master key by design (their kernels must not hold
# it), so production asks them for everything else but the key.
_SEATS = frozenset({"lab"})
# The long-running services, as error tracking names them; every other command is "cli".
_SERVICES = {"scheduler": "scheduler", "worker": "worker", "dashboards": "dashboards"}


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Load the settings once, refuse unsafe production settings, start error tracking."""
    from workbench.ops.logging import configure_logging
    from workbench.ops.tracking import init_tracking

    settings = load_settings()
    if ctx.invoked_subcommand not in _SETUP_COMMANDS | _SELF_CHECKING_COMMANDS:
        ensure_production_safe(settings, allow_missing_key=ctx.invoked_subcommand in _SEATS)
    configure_logging(settings)
    # Only with WORKBENCH_SENTRY_DSN (see ops/tracking); events name the service they come from.
    init_tracking(settings, service=_SERVICES.get(ctx.invoked_subcommand or "", "cli"))
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
    # Plain lines, never wrapped: the home and the database URL are copied from here.
    console.print("[bold]Workbench initialised[/]")
    for line in lines:
        console.print("  " + escape(line), soft_wrap=True, highlight=False)
    if result.admin_password:
        console.print(
            Panel(
                f"[bold]{escape(result.admin_password)}[/bold]",
                title=f"One-time password for {escape(result.admin_username)}",
                subtitle="shown once: store it now",
            )
        )


#: `workbench doctor`'s exit codes, for scripts: every check ok, a check failed, warnings only.
DOCTOR_OK, DOCTOR_FAILED, DOCTOR_WARNING = 0, 1, 2
_DOCTOR_STATUS = {"ok": "[green]ok[/]", "warning": "[yellow]warning[/]", "failed": "[red]failed[/]"}


@app.command()
def doctor(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the settings and checks as one JSON object.")
    ] = False,
) -> None:
    """Show the effective configuration (secrets masked) and check every service.

    Exits 0 when every check is ok, 1 when one failed, 2 when some only warn.
    """
    import json

    from workbench.core.errors import InsecureConfigurationError
    from workbench.db.engine import create_workbench_engine
    from workbench.db.errors import DatabaseMissingError
    from workbench.db.failures import require_existing
    from workbench.ops.health import Check, run_checks

    settings = settings_of(ctx)
    first: list[Check] = []
    if as_json:  # a script gets its answer as JSON and 0/1/2, even for unusable settings
        try:
            ensure_production_safe(settings)
        except InsecureConfigurationError as exc:
            first.append(Check("production", False, "; ".join(exc.problems)))
    else:
        ensure_production_safe(settings)
        print_table(_settings_table(settings))
    try:
        require_existing(settings)  # a check creates nothing
        engine = create_workbench_engine(settings)
    except DatabaseMissingError as exc:
        checks = [Check("database", False, str(exc))]
    except WorkbenchError as exc:
        if not as_json:
            raise
        checks = [Check("database", False, str(exc))]
    else:
        try:
            checks = run_checks(settings, engine)
        finally:
            engine.dispose()
    key, source = settings.effective_secret_key()
    key_ok = key is not None
    key_check = Check("secret key", key_ok, f"from {source}" if key_ok else "run `workbench init`")
    every = [*first, key_check, *checks]
    if any(not c.ok for c in every):
        code = DOCTOR_FAILED
    else:
        code = DOCTOR_WARNING if any(c.warning for c in every) else DOCTOR_OK
    if as_json:
        report = {
            "status": {DOCTOR_OK: "ok", DOCTOR_FAILED: "failed", DOCTOR_WARNING: "warning"}[code],
            "settings": _settings_values(settings),
            "checks": [
                {
                    "name": c.name,
                    "status": c.status,
                    "detail": c.detail,
                    "seconds": round(c.seconds, 4),
                }
                for c in every
            ],
        }
        typer.echo(json.dumps(report, indent=2))
    else:
        checks_table = Table(title="Checks")
        checks_table.add_column("check", no_wrap=True)
        checks_table.add_column("status", no_wrap=True)
        checks_table.add_column("detail")
        checks_table.add_row(
            "secret key",
            "[green]ok[/]" if key_ok else "[red]missing[/]",
            escape(key_check.detail),
        )
        for check in checks:
            checks_table.add_row(check.name, _DOCTOR_STATUS[check.status], escape(check.detail))
        print_table(checks_table)
    if code != DOCTOR_OK:
        raise typer.Exit(code)


def _settings_values(settings: Settings) -> dict[str, str]:
    """Every setting by its environment name, as doctor shows it (secrets masked)."""
    values: dict[str, str] = {}
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
        values[ENV_PREFIX + name.upper()] = shown
    return values


def _settings_table(settings: Settings) -> Table:
    table = Table(title="Settings")
    table.add_column("setting", no_wrap=True)
    table.add_column("value", no_wrap=True)  # the database URL, paths: copied, never cut
    for name, shown in _settings_values(settings).items():
        table.add_row(name, escape(shown))
    return table


def _engine(ctx: typer.Context) -> Engine:
    from workbench.db.engine import create_workbench_engine
    from workbench.db.failures import require_existing

    require_existing(settings_of(ctx))

    return create_workbench_engine(settings_of(ctx))


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Upgrade the schema (default: to the newest revision)."""
    from workbench.core.home import ensure_home
    from workbench.db import migrate

    ensure_home(settings_of(ctx))  # a deployment's first service creates it, as its owner
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
    table.add_column("revision", no_wrap=True)
    table.add_column("revises", no_wrap=True)
    table.add_column("change")
    for rev in migrate.history():
        table.add_row(rev.revision, rev.down_revision or "-", escape(rev.message.splitlines()[0]))
    print_table(table)


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


@db_app.command("check-migrations")
def db_check_migrations(
    ctx: typer.Context,
    wait: Annotated[
        float,
        typer.Option(
            help="Keep checking for up to this many seconds (for an init container).", min=0
        ),
    ] = 0.0,
) -> None:
    """Exit 0 once the database answers at the newest migration; else fail in one line.

    It also creates the home (0700) when missing: run first in every pod, as the services'
    own user, it makes that user the home's owner before a process running as root starts.
    """
    from workbench.core.home import ensure_home
    from workbench.ops.errors import DatabaseNotReadyError
    from workbench.ops.health import wait_for_migrations

    ensure_home(settings_of(ctx))
    check = wait_for_migrations(settings_of(ctx), wait)
    if not check.ok:
        waited = f" after {wait:g}s" if wait else ""
        raise DatabaseNotReadyError(
            f"The database is not ready{waited}: {check.name} {check.detail}".replace("\n", " ")
        )
    console.print(f"database ready: schema {check.detail}")


def _add_plugin_commands() -> None:
    """Let plugins add commands once per process (the `register_commands` hook)."""
    global _plugin_commands_added
    if _plugin_commands_added:
        return
    from workbench.plugins.manager import get_plugins

    get_plugins().call("register_commands", app=app)
    _plugin_commands_added = True


_plugin_commands_added = False


def _fail(exc: WorkbenchError) -> NoReturn:
    err_console.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False)
    sys.exit(exc.exit_code)


def _database_failure(exc: Exception) -> WorkbenchError | None:
    """``exc`` in the user's terms when it is a failure to reach or open the database."""
    sqlalchemy_errors = sys.modules.get("sqlalchemy.exc")  # not imported: not its error
    if sqlalchemy_errors is None or not isinstance(exc, sqlalchemy_errors.SQLAlchemyError):
        return None
    from workbench.db.failures import explain

    try:
        url = load_settings().effective_database_url()
    except WorkbenchError:
        url = ""
    return explain(exc, url)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    skip_slow_optional_imports()  # before anything imports jsonschema (workbench.core.startup)
    try:
        _add_plugin_commands()
        args = sys.argv[1:] if argv is None else argv
        app(args=normalize_parameter_args(args), prog_name="workbench")
    except WorkbenchError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        sys.exit(130)
    except Exception as exc:
        explained = _database_failure(exc)
        if explained is not None:  # the database could not be reached, opened or found
            _fail(explained)
        from workbench.ops.tracking import report_exception

        report_exception(exc)  # a Workbench bug, not the user's mistake: report it, then fail
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
