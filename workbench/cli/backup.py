"""`workbench backup`: create, verify, restore, list and prune backups, and schedule the job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from workbench.cli.common import WorkbenchTyper, console, settings_of, workbench_of
from workbench.cli.errors import UsageError
from workbench.cli.output import print_table

app = WorkbenchTyper(
    help="Backups that prove they restore: create, verify, restore, list, prune, schedule.",
    no_args_is_help=True,
)

JOB_NAME = "workbench-backup"

_Location = Annotated[
    str | None,
    typer.Option("--to", help="Backup folder or URL (default: the home's backups folder)."),
]
_Dir = Annotated[
    str | None,
    typer.Option("--dir", help="Backup folder or URL (default: the home's backups folder)."),
]
_KeepDaily = Annotated[int, typer.Option(help="Keep the newest backup of this many days.")]
_KeepWeekly = Annotated[int, typer.Option(help="Keep the newest backup of this many weeks.")]
_KeepMonthly = Annotated[int, typer.Option(help="Keep the newest backup of this many months.")]


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover


@app.command("create")
def create(
    ctx: typer.Context,
    to: _Location = None,
    include_key: Annotated[
        bool,
        typer.Option(
            "--include-key",
            help="Also store the secret key (mode 0600): guard such a backup like the key.",
        ),
    ] = False,
) -> None:
    """Back up the database, the run outputs and (with --include-key) the secret key."""
    from workbench.ops.backup.api import create_backup, shown_location

    with workbench_of(ctx) as wb:
        made = create_backup(wb, to, include_key=include_key)
    manifest = made.manifest
    rows = sum(t.rows for t in manifest.tables.values())
    console.print(f"backup written: {escape(shown_location(made.where))}", highlight=False)
    console.print(
        f"{manifest.database_kind} at migration {manifest.revision}: {len(manifest.tables)} "
        f"tables, {rows} rows, {len(manifest.files)} files"
        + (", with the secret key" if manifest.key_included else ""),
        highlight=False,
    )
    console.print(f"next: workbench backup verify {escape(shown_location(made.where))}")


@app.command("verify")
def verify(
    ctx: typer.Context,
    backup: Annotated[
        str, typer.Argument(help="Backup folder, URL, or name in the backups folder.")
    ],
) -> None:
    """Prove a backup restores: checksums, a scratch restore, row counts, checksums and the key."""
    from workbench.ops.backup.verify import verify_backup

    with workbench_of(ctx) as wb:
        result = verify_backup(wb, backup)
    for check in result.checks:
        console.print(f"[green]ok[/] {escape(check)}", highlight=False)
    console.print(f"backup {escape(result.where)} verified", highlight=False)


@app.command("restore")
def restore(
    ctx: typer.Context,
    backup: Annotated[
        str, typer.Argument(help="Backup folder, URL, or name in the backups folder.")
    ],
    into: Annotated[
        str | None, typer.Option("--into", help="Database URL to restore into (must be empty).")
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Home folder to restore the run outputs and key into (SQLite: its database too).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a target that is not empty.")
    ] = False,
) -> None:
    """Restore a backup into an empty database and home, then run the `doctor` checks."""
    from workbench.ops.backup.restore import restore_backup

    if into is None and home is None:
        raise UsageError("Say where to restore: --into DATABASE_URL and/or --home DIR.")
    result = restore_backup(settings_of(ctx), backup, into=into, home=home, force=force)
    console.print(
        f"restored {escape(result.name)} into {escape(result.database)} "
        f"(home {escape(str(result.home))})",
        highlight=False,
    )
    for note in result.notes:
        console.print(f"note: {escape(note)}", highlight=False)
    table = Table(title="Checks")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail")
    colors = {"ok": "green", "warning": "yellow", "failed": "red"}
    for check in result.checks:
        table.add_row(
            check.name, f"[{colors[check.status]}]{check.status}[/]", escape(check.detail)
        )
    print_table(table)
    if not result.ok:
        raise typer.Exit(1)


@app.command("list")
def list_(
    ctx: typer.Context,
    directory: _Dir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the backups, newest first, with their size and verification."""
    from workbench.ops.backup.api import list_backups

    backups = list_backups(settings_of(ctx), directory)
    if as_json:
        payload = [
            {
                "name": b.name,
                "location": b.where,
                "created_at": b.created_at.isoformat(),
                "database": b.database_kind,
                "revision": b.revision,
                "bytes": b.size_bytes,
                "key_included": b.key_included,
                "verified": b.verified,
                "verified_at": b.verified_at.isoformat() if b.verified_at else None,
                "problem": b.problem,
            }
            for b in backups
        ]
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table(title="Backups")
    table.add_column("name (created, UTC)", no_wrap=True)
    for column in ("database", "schema", "size", "key", "verified"):
        table.add_column(column, no_wrap=True)
    for b in backups:
        verified = {None: "-", True: "[green]yes[/]", False: "[red]FAILED[/]"}[b.verified]
        if b.problem:
            verified = "[red]unreadable[/]"
        table.add_row(
            escape(b.name),
            b.database_kind,
            escape(b.revision),
            _size(b.size_bytes),
            "yes" if b.key_included else "-",
            verified,
        )
    print_table(table)
    if not backups:
        console.print("no backups yet: `workbench backup create`")


@app.command("prune")
def prune(
    ctx: typer.Context,
    keep_daily: _KeepDaily = 7,
    keep_weekly: _KeepWeekly = 4,
    keep_monthly: _KeepMonthly = 6,
    directory: _Dir = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be deleted; delete nothing.")
    ] = False,
) -> None:
    """Delete old backups, keeping daily, weekly and monthly ones and the newest verified."""
    from workbench.ops.backup.api import prune_backups

    result = prune_backups(
        settings_of(ctx),
        directory,
        keep_daily=keep_daily,
        keep_weekly=keep_weekly,
        keep_monthly=keep_monthly,
        dry_run=dry_run,
    )
    for name, reasons in sorted(result.kept.items(), reverse=True):
        console.print(f"keep   {escape(name)} ({escape(', '.join(reasons))})", highlight=False)
    verb = "would delete" if dry_run else "deleted"
    for name in result.deleted:
        console.print(f"{verb} {escape(name)}", highlight=False)
    console.print(f"{len(result.kept)} kept, {len(result.deleted)} {verb}", highlight=False)


@app.command("schedule")
def schedule(
    ctx: typer.Context,
    cron: Annotated[str, typer.Argument(help="Cron schedule, e.g. '0 2 * * *'.")],
    to: _Location = None,
    include_key: Annotated[
        bool, typer.Option("--include-key", help="Store the secret key in each backup (0600).")
    ] = False,
    keep_daily: _KeepDaily = 7,
    keep_weekly: _KeepWeekly = 4,
    keep_monthly: _KeepMonthly = 6,
    timezone: Annotated[str, typer.Option(help="IANA time zone of the schedule.")] = "UTC",
    retries: Annotated[int, typer.Option(help="Retries after a failed attempt.")] = 2,
    timeout: Annotated[float, typer.Option(help="Seconds a run may take.")] = 6 * 3600,
) -> None:
    """Register the built-in backup job: create, verify and prune on a cron schedule."""
    from workbench.ops.backup.api import BACKUP_NOTEBOOK
    from workbench.scheduler import api as jobs

    with workbench_of(ctx) as wb:
        job = jobs.register(
            JOB_NAME,
            str(BACKUP_NOTEBOOK),
            schedule=cron,
            timezone=timezone,
            parameters={
                "location": to or "",
                "include_key": include_key,
                "keep_daily": keep_daily,
                "keep_weekly": keep_weekly,
                "keep_monthly": keep_monthly,
            },
            retries=retries,
            timeout=timeout,
            workbench=wb,
        )
    when = job.next_run_at.isoformat() if job.next_run_at else "-"
    console.print(
        f"job {JOB_NAME} saved: {escape(cron)} ({escape(timezone)}); next run: {when}",
        highlight=False,
    )
