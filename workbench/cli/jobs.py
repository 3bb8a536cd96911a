"""`workbench jobs`: register, inspect, pause, resume, trigger, transfer and delete jobs.

In team mode a job belongs to a user and a team: from your own login, your team's jobs
(`--team` when you have several); the service names the owner (`--owner USERNAME`).
"""

from __future__ import annotations

import json
from typing import Annotated, TypeAlias

import typer
from rich.markup import escape

from workbench.cli.common import WorkbenchTyper, console, settings_of, workbench_of
from workbench.cli.output import (
    Column,
    JsonOption,
    json_value,
    print_json,
    print_record,
    print_rows,
)
from workbench.cli.params import ParameterFileOption, ParameterOption, parameter_input

app = WorkbenchTyper(
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
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone of the schedule. (new job: UTC)")
    ] = None,
    parameter: ParameterOption = None,
    parameters_file: ParameterFileOption = None,
    retries: Annotated[
        int | None, typer.Option(help="Retries after a failed attempt. (new job: 0)")
    ] = None,
    retry_delay: Annotated[
        float | None, typer.Option(help="Seconds before the first retry. (new job: 60)")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds a run may take; 0 for no limit. (new job: none)")
    ] = None,
    max_concurrency: Annotated[
        int | None, typer.Option(help="Runs of this job at once. (new job: 1)")
    ] = None,
    catchup: Annotated[
        str | None,
        typer.Option(help="After downtime: none, latest or all missed slots. (new job: latest)"),
    ] = None,
    catchup_limit: Annotated[
        int | None, typer.Option(help="Most missed runs 'all' creates. (new job: 100)")
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option(help="The service in team mode: the user (USERNAME) the job runs as."),
    ] = None,
    team: Annotated[
        str | None, typer.Option(help="The job's team, when you (or its owner) have several.")
    ] = None,
) -> None:
    """Register a job, or update the job with that name in its team.

    Updating changes only what is given: an option left out keeps the job's current value
    (parameters too, unless `-p` or `-f` is given), but for `--schedule`, whose absence makes
    the job on demand.
    """
    from workbench.runs.notebook import locate_notebook, notebook_schema, read_notebook
    from workbench.scheduler import api as jobs

    given = parameter_input(parameter, parameters_file)
    # Checked against the notebook's types first, exactly as for `workbench run`.
    values = (
        given.typed(notebook_schema(read_notebook(locate_notebook(notebook, settings_of(ctx)))))
        if given
        else None  # the job keeps its parameters
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
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List jobs with their schedule, state and next run."""
    from workbench.scheduler import api as jobs

    with workbench_of(ctx) as wb:
        found = jobs.list_jobs(workbench=wb)
        owners = jobs.owner_names(found, workbench=wb)
    rows = [
        {
            "name": job.name,
            "owner": owners.get(job.owner_id) if job.owner_id else None,
            "notebook": job.notebook,
            "schedule": job.schedule,
            "timezone": job.timezone,
            "state": "paused" if job.paused else "active",
            "next_run_at": job.next_run_at,
        }
        for job in found
    ]
    if not as_json:
        for row in rows:
            row["schedule"] = row["schedule"] or "on demand"
    print_rows(
        rows, _JOB_COLUMNS, as_json=as_json, title="Jobs",
        empty="No jobs yet: `workbench jobs add NAME NOTEBOOK --schedule CRON`.",
    )  # fmt: skip


_JOB_COLUMNS = (
    Column("name", "name", identifier=True),
    Column("owner", "owner", identifier=True),
    Column("notebook", "notebook", identifier=True),
    Column("schedule", "schedule"),
    Column("timezone", "time zone"),
    Column("state", "state"),
    Column("next_run_at", "next run (UTC)"),
)


@app.command("show")
def show(
    ctx: typer.Context, name: str, team: TeamOption = None, as_json: JsonOption = False
) -> None:
    """Show one job's full definition."""
    from workbench.scheduler import api as jobs

    with workbench_of(ctx) as wb:
        job = jobs.get(name, team=team, workbench=wb)
        owners = jobs.owner_names([job], workbench=wb)
    owner = owners.get(job.owner_id) if job.owner_id else None
    if as_json:
        print_json(
            {
                "name": job.name, "id": job.id, "owner": owner, "notebook": job.notebook,
                "schedule": job.schedule, "timezone": job.timezone, "parameters": job.parameters,
                "retries": job.retries, "retry_delay_seconds": job.retry_delay_seconds,
                "timeout_seconds": job.timeout_seconds, "max_concurrency": job.max_concurrency,
                "catchup": job.catchup.value, "catchup_limit": job.catchup_limit,
                "state": "paused" if job.paused else "active", "next_run_at": job.next_run_at,
                "last_scheduled_for": job.last_scheduled_for,
            }
        )  # fmt: skip
        return
    record = {
        "name": job.name,
        "owner": owner,
        "notebook": job.notebook,
        "schedule": job.schedule or "on demand",
        "timezone": job.timezone,
        "parameters": json.dumps(json_value(job.parameters), ensure_ascii=False),
        "retries": job.retries,
        "retry delay (s)": job.retry_delay_seconds,
        "timeout (s)": job.timeout_seconds or "none",
        "max concurrency": job.max_concurrency,
        "catch-up": f"{job.catchup.value} (limit {job.catchup_limit})",
        "state": "paused" if job.paused else "active",
        "next run (UTC)": job.next_run_at,
        "last scheduled slot (UTC)": job.last_scheduled_for,
    }
    print_record(record, as_json=False)


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
