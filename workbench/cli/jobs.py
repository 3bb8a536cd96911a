"""`workbench jobs`: register, inspect, pause, resume, trigger, transfer and delete jobs.

In team mode a job belongs to a user and a team: from your own login, your team's jobs
(`--team` when you have several); the service names the owner (`--owner USERNAME`).
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Annotated, TypeAlias

import typer
from rich.markup import escape
from rich.table import Table

from workbench.cli.common import console, settings_of, workbench_of
from workbench.cli.params import ParameterFileOption, ParameterOption, parameter_input

app = typer.Typer(
    help="Scheduled notebooks: add, list, show, pause, resume, trigger, transfer, delete.",
    no_args_is_help=True,
)

TeamOption: TypeAlias = Annotated[
    str | None, typer.Option(help="The job's team, when several teams have a job so named.")
]


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Job name (unique in its team).")],
    notebook: Annotated[str, typer.Argument(help="Notebook path to run.")],
    schedule: Annotated[
        str | None, typer.Option(help="Cron schedule, e.g. '0 6 * * *'; omit for on demand.")
    ] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone of the schedule.")] = "UTC",
    parameter: ParameterOption = None,
    parameters_file: ParameterFileOption = None,
    retries: Annotated[int, typer.Option(help="Retries after a failed attempt.")] = 0,
    retry_delay: Annotated[float, typer.Option(help="Seconds before the first retry.")] = 60,
    timeout: Annotated[float | None, typer.Option(help="Seconds a run may take.")] = None,
    max_concurrency: Annotated[int, typer.Option(help="Runs of this job at once.")] = 1,
    catchup: Annotated[
        str, typer.Option(help="After downtime: none, latest or all missed slots.")
    ] = "latest",
    catchup_limit: Annotated[int, typer.Option(help="Most missed runs 'all' creates.")] = 100,
    owner: Annotated[
        str | None,
        typer.Option(help="The service in team mode: the user (USERNAME) the job runs as."),
    ] = None,
    team: Annotated[
        str | None, typer.Option(help="The job's team, when you (or its owner) have several.")
    ] = None,
) -> None:
    """Register a job, or update the job with that name in its team."""
    from workbench.runs.notebook import locate_notebook, notebook_schema, read_notebook
    from workbench.scheduler import api as jobs

    given = parameter_input(parameter, parameters_file)
    # Checked against the notebook's types first, exactly as for `workbench run`.
    values = (
        given.typed(notebook_schema(read_notebook(locate_notebook(notebook, settings_of(ctx)))))
        if given
        else {}
    )
    with workbench_of(ctx) as wb:
        job = jobs.register(
            name,
            notebook,
            schedule=schedule,
            timezone=timezone,
            parameters=values,
            retries=retries,
            retry_delay=retry_delay,
            timeout=timeout,
            max_concurrency=max_concurrency,
            catchup=catchup,
            catchup_limit=catchup_limit,
            owner=owner,
            team=team,
            workbench=wb,
        )
    when = job.next_run_at.isoformat() if job.next_run_at else "on demand"
    console.print(f"job {escape(name)} saved; next run: {when}")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List jobs with their schedule, state and next run."""
    from workbench.scheduler import api as jobs

    with workbench_of(ctx) as wb:
        rows = jobs.list_jobs(workbench=wb)
        owners = jobs.owner_names(rows, workbench=wb)
    table = Table(title="Jobs")
    columns = ("name", "owner", "notebook", "schedule", "time zone", "state", "next run (UTC)")
    for column in columns:
        table.add_column(column)
    for job in rows:
        table.add_row(
            escape(job.name),
            escape(owners.get(job.owner_id, "-") if job.owner_id else "-"),
            escape(job.notebook),
            escape(job.schedule or "on demand"),
            job.timezone,
            "paused" if job.paused else "active",
            job.next_run_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if job.next_run_at else "-",
        )
    console.print(table)


@app.command("show")
def show(ctx: typer.Context, name: str, team: TeamOption = None) -> None:
    """Show one job's full definition."""
    from workbench.scheduler import api as jobs

    with workbench_of(ctx) as wb:
        job = jobs.get(name, team=team, workbench=wb)
        owners = jobs.owner_names([job], workbench=wb)
    fields = {
        "name": job.name,
        "owner": owners.get(job.owner_id, "-") if job.owner_id else "-",
        "notebook": job.notebook,
        "schedule": job.schedule or "on demand",
        "timezone": job.timezone,
        "parameters": json.dumps(job.parameters, default=str),
        "retries": job.retries,
        "retry delay (s)": job.retry_delay_seconds,
        "timeout (s)": job.timeout_seconds or "none",
        "max concurrency": job.max_concurrency,
        "catch-up": f"{job.catchup.value} (limit {job.catchup_limit})",
        "state": "paused" if job.paused else "active",
        "next run": job.next_run_at.isoformat() if job.next_run_at else "-",
        "last scheduled slot": job.last_scheduled_for.isoformat()
        if job.last_scheduled_for
        else "-",
    }
    table = Table(show_header=False)
    for key, value in fields.items():
        table.add_row(key, escape(str(value)))
    console.print(table)


@app.command("pause")
def pause(ctx: typer.Context, name: str, team: TeamOption = None) -> None:
    """Stop scheduling the job (runs already queued still run)."""
    from workbench.scheduler import api as jobs

    with workbench_of(ctx) as wb:
        jobs.pause(name, team=team, workbench=wb)
    console.print(f"job {escape(name)} paused")


@app.command("resume")
def resume(ctx: typer.Context, name: str, team: TeamOption = None) -> None:
    """Schedule the job again from now on (slots missed while paused are not caught up)."""
    from workbench.scheduler import api as jobs

    with workbench_of(ctx) as wb:
        job = jobs.resume(name, team=team, workbench=wb)
    console.print(f"job {escape(name)} resumed; next run: {job.next_run_at}")


@app.command("trigger")
def trigger(ctx: typer.Context, name: str, team: TeamOption = None) -> None:
    """Queue a run of the job now."""
    from workbench.scheduler import api as jobs

    with workbench_of(ctx) as wb:
        run_id = jobs.trigger(name, team=team, workbench=wb)
    console.print(f"queued run {run_id}")


@app.command("delete")
def delete(ctx: typer.Context, name: str, team: TeamOption = None) -> None:
    """Delete the job; its past runs are kept."""
    from workbench.scheduler import api as jobs

    with workbench_of(ctx) as wb:
        jobs.delete(name, team=team, workbench=wb)
    console.print(f"job {escape(name)} deleted")


@app.command("transfer")
def transfer(
    ctx: typer.Context,
    name: str,
    owner: Annotated[str, typer.Option(help="The user (USERNAME) the job belongs to from now.")],
    team: TeamOption = None,
) -> None:
    """Give the job to another owner: an admin act (the service, or an admin's own login)."""
    from workbench.scheduler import api as jobs

    with workbench_of(ctx) as wb:
        jobs.transfer(name, owner, team=team, workbench=wb)
    console.print(f"job {escape(name)} now belongs to {escape(owner)}")
