"""`workbench run`, `workbench runs ...` and `workbench notebooks ...`.

`run` starts its kernel before anything else, so the kernel boots while the database and
the notebook are read; papermill is never imported.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from workbench.cli.common import WorkbenchTyper
from workbench.cli.common import settings_of as _settings
from workbench.cli.common import workbench_of as _workbench
from workbench.cli.errors import UsageError
from workbench.cli.output import (
    Column,
    JsonOption,
    print_json,
    print_record,
    print_rows,
    print_table,
)
from workbench.cli.params import ParameterFileOption, ParameterOption, parameter_input
from workbench.core.config import Settings
from workbench.core.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.app import Workbench
    from workbench.runs.records import Run

__all__ = ["notebooks_app", "run_command", "runs_app"]

runs_app = WorkbenchTyper(help="List, inspect and cancel notebook runs.", no_args_is_help=True)
notebooks_app = WorkbenchTyper(
    help="List and inspect parameterised notebooks.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

RunIdArgument = Annotated[
    str, typer.Argument(metavar="RUN_ID", help="The run id, or a unique prefix of it (4+).")
]

_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "timed_out": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "queued": "blue",
}


def run_command(
    ctx: typer.Context,
    notebook: Annotated[
        Path,
        typer.Argument(
            help="The notebook: a path, or a name in a notebook folder.", dir_okay=False
        ),
    ],
    timeout: Annotated[
        int | None, typer.Option(help="Stop the run after this many seconds (timed out).")
    ] = None,
    cell_timeout: Annotated[
        int | None, typer.Option(help="Stop when one cell runs longer than this many seconds.")
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option(
            "--as", help="The service in team mode: the user (USERNAME) the run belongs to."
        ),
    ] = None,
    team: Annotated[
        str | None, typer.Option(help="The run's team, when its owner has several.")
    ] = None,
    parameter: ParameterOption = None,
    parameters_file: ParameterFileOption = None,
) -> None:
    """Run NOTEBOOK now: `workbench run NB -p NAME VALUE ...` (or `-p NAME=VALUE`, `-f FILE`).

    Values are converted by the notebook's declared types and checked before anything
    starts. The first run starts a warm worker in the background (`workbench runs serve`,
    yours only, exits when idle), and later runs go to its started kernels. In team mode a
    run belongs to a user: your own login's runs are yours (`--team` picks the team when you
    have several); the service names the user with `--as USERNAME`.
    """
    from workbench.runs.notebook import locate_notebook, notebook_schema, read_notebook
    from workbench.runs.params import ParameterSchema

    settings = _settings(ctx)
    given = parameter_input(parameter, parameters_file)
    path = locate_notebook(notebook, settings)
    values = given.typed(notebook_schema(read_notebook(path))) if given else {}
    parameters = ParameterSchema.to_json(values)
    options = (timeout, cell_timeout, owner, team)
    outcome = _run_on_warm_worker(settings, Path(path), parameters, *options)
    executed_here = False  # the warm worker executed it
    if outcome is None:
        outcome, executed_here = _run_here(ctx, Path(path), parameters, *options)
    _print_outcome(outcome)
    if executed_here:
        _start_warm_worker(settings)
    if outcome["status"] != "succeeded":
        raise typer.Exit(1)


def _start_warm_worker(settings: Settings) -> None:
    """After a run executed here, start a warm worker for the next ones (after the run: no
    competition for the machine while it ran), and say so on stderr (a script's output stays
    the run's)."""
    from workbench.runs.serve import start_in_background

    if start_in_background(settings):
        idle = f"{settings.warm_worker_idle_seconds:g}"
        err_console.print(
            f"[dim]Started a warm worker for later runs (`workbench runs serve`, yours; it exits "
            f"after {idle} s without a run; WORKBENCH_WARM_WORKER_IDLE_SECONDS=0 turns it "
            "off).[/]",
            highlight=False,
        )


@contextmanager
def _progress_bar(notebook: Path) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar advanced per cell: ``advance(cell, total)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    name = escape(notebook.name)
    # In a pipe or a log there is no bar at all (not even the blank line of a stopped one).
    quiet = not err_console.is_terminal
    with Progress(*columns, console=err_console, transient=True, disable=quiet) as progress:
        task = progress.add_task(name, total=None)

        def advance(cell: int, total: int) -> None:
            progress.update(
                task, description=f"{name}: cell {cell}", completed=max(cell - 1, 0), total=total
            )

        yield advance


def _run_on_warm_worker(
    settings: Settings,
    notebook: Path,
    parameters: dict[str, Any],
    timeout: int | None,
    cell_timeout: int | None,
    owner: str | None,
    team: str | None,
) -> dict[str, Any] | None:
    from workbench.runs.serve import request_run

    request = {
        "notebook": str(notebook), "values": parameters,
        "timeout": timeout, "cell_timeout": cell_timeout, "owner": owner, "team": team,
    }  # fmt: skip
    with _progress_bar(notebook) as advance:
        reply = request_run(settings, request, advance)
    if reply is None:
        return None
    if "error" in reply:
        raise (
            WorkbenchError(reply["error"])
            if reply.get("exit_code") != 2
            else UsageError(reply["error"])
        )
    record: dict[str, Any] = reply["run"]
    return record


def _run_here(
    ctx: typer.Context,
    notebook: Path,
    parameters: dict[str, Any],
    timeout: int | None,
    cell_timeout: int | None,
    owner: str | None,
    team: str | None,
) -> tuple[dict[str, Any], bool]:
    """Run the notebook on a kernel started here; its record, and whether it was executed here
    (not by the service, as the runs of a user's own login are)."""
    from workbench.runs.api import executed_by_service
    from workbench.runs.kernels import KernelPool, kernel_env
    from workbench.runs.sandbox import kernel_user

    # The kernel boots while the database and the notebook are read.
    settings = _settings(ctx)
    kernels = KernelPool(
        1, env=kernel_env(), replenish=False, warmup=False, kernel_user=kernel_user(settings)
    )
    try:
        with _workbench(ctx) as wb:
            by_service = executed_by_service(wb)
            run = _run_with_progress(
                wb, kernels, notebook, parameters, timeout, cell_timeout, owner, team,
                by_service=by_service,
            )  # fmt: skip
    finally:
        kernels.close()
    from workbench.runs.serve import outcome

    return outcome(run), not by_service


def _run_with_progress(
    wb: Workbench,
    kernels: Any,
    notebook: Path,
    parameters: dict[str, Any],
    timeout: int | None,
    cell_timeout: int | None,
    owner: str | None = None,
    team: str | None = None,
    *,
    by_service: bool,
) -> Run:
    """Queue the run and execute it on ``kernels``, or (``by_service``: from a user's own
    login in team mode) wait while the service executes it as that user."""
    from workbench.runs.api import queue_run, wait
    from workbench.runs.execute import execute_run

    path, values = str(notebook), parameters  # located and checked by run_command
    if by_service and cell_timeout is not None:
        raise UsageError(
            "--cell-timeout applies to runs executed here; the service executes the runs of "
            "your own login: give the run a --timeout instead."
        )
    run_id = queue_run(
        path, values, timeout=timeout, triggered_by="cli", owner=owner,
        team=team, workbench=wb,
    )  # fmt: skip
    with _progress_bar(notebook) as advance:

        def progress(_run: Run | None, cell: int, total: int) -> None:
            advance(cell, total)

        if by_service:
            return wait(run_id, workbench=wb, on_progress=progress)
        return execute_run(
            run_id, workbench=wb, kernels=kernels, cell_timeout=cell_timeout,
            on_progress=progress,
        )  # fmt: skip


def _print_outcome(run: dict[str, Any]) -> None:
    status = run["status"]
    style = _STATUS_STYLE.get(status, "white")
    duration = f" in {run['duration']:.2f} s" if run["duration"] is not None else ""
    console.print(
        f"run {run['id']} [{style}]{status}[/]{duration} "
        f"(cell {run['progress_cell']} of {run['progress_total']})",
        highlight=False,
    )
    console.print(f"output: {escape(run['output_uri'] or '-')}", highlight=False)
    if status == "succeeded":
        return
    where = f" in cell {run['error_cell']}" if run["error_cell"] else ""
    err_console.print(
        f"[bold red]{escape(run['error_name'] or 'Error')}{escape(where)}:[/] "
        f"{escape(run['error_message'] or '')}",
        highlight=False,
    )
    traceback = _failing_traceback(run["output_uri"])
    if traceback:
        err_console.print(Text.from_ansi(traceback))


def _output_notebook(output_uri: str | None) -> dict[str, Any] | None:
    from workbench.runs import storage

    if not output_uri:
        return None
    try:
        data: dict[str, Any] = json.loads(storage.read_output(output_uri, storage.NOTEBOOK_NAME))
    except (WorkbenchError, ValueError):
        return None
    return data


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _failing_traceback(output_uri: str | None) -> str:
    nb = _output_notebook(output_uri)
    if nb is None:
        return ""
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return "\n".join(out.get("traceback", [])[-12:])
    return ""


def _status_style(status: str) -> str:
    return _STATUS_STYLE.get(status, "white")


_RUN_COLUMNS = (
    Column("id", "id", identifier=True),
    Column("notebook", "notebook", identifier=True),
    Column("status", "status", style=_status_style),
    Column("queued_at", "queued (UTC)"),
    Column("duration_seconds", "duration (s)"),
    Column("cells", "cells"),
    Column("triggered_by", "by"),
)


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
    notebook: Annotated[str | None, typer.Option(help="Only runs of this notebook.")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The newest runs (ids in full; `runs show` and the others take a unique prefix)."""
    from workbench.runs.api import runs

    with _workbench(ctx) as wb:
        found = runs(limit=limit, notebook=notebook, status=status, workbench=wb)
    rows = [
        {
            "id": run.id,
            "notebook": run.notebook if as_json else Path(run.notebook).name,
            "status": run.status.value,
            "queued_at": run.queued_at,
            "duration_seconds": round(run.duration, 2) if run.duration is not None else None,
            "cells": f"{run.progress_cell}/{run.progress_total}",
            "triggered_by": run.triggered_by,
        }
        for run in found
    ]
    print_rows(rows, _RUN_COLUMNS, as_json=as_json, empty="No runs yet: `workbench run NB`.")


@runs_app.command("show")
def runs_show(
    ctx: typer.Context,
    run_id: RunIdArgument,
    as_json: JsonOption = False,
) -> None:
    """Every field of one run's record, and the names of its recorded results."""
    from workbench.runs.api import results, show

    with _workbench(ctx) as wb:
        run = show(run_id, workbench=wb)
        names = sorted(results(run.id, workbench=wb))
    record: dict[str, Any] = dict(vars(run))
    record["status"] = run.status.value
    record["duration_seconds"] = run.duration
    record["results"] = names
    print_record(record, as_json=as_json)


@runs_app.command("logs")
def runs_logs(ctx: typer.Context, run_id: RunIdArgument) -> None:
    """What the run's cells printed (stdout, stderr and errors), from its output notebook."""
    from workbench.runs.api import show
    from workbench.runs.notebook import INJECTED_TAG
    from workbench.runs.storage import run_location

    with _workbench(ctx) as wb:
        run = show(run_id, workbench=wb)  # the run must be visible to this login
        # Read where the storage base and the run id say, never where the row says.
        nb = _output_notebook(run_location(wb.settings, run.id))
    if nb is None:
        raise WorkbenchError(f"Run {run.id} has no output notebook yet ({run.status.value}).")
    number = 0  # the notebook's own numbering: every cell as written, never the injected one
    for cell in nb.get("cells", []):
        if INJECTED_TAG not in cell.get("metadata", {}).get("tags", []):
            number += 1
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "stream":
                text = _text(out.get("text"))
                console.print(Text(f"[cell {number} {out.get('name')}] ", style="dim") + Text(text))
            elif kind == "error":
                console.print(Text(f"[cell {number} error]", style="red"))
                console.print(Text.from_ansi("\n".join(out.get("traceback", []))))


@runs_app.command("serve")
def runs_serve(
    ctx: typer.Context,
    kernels: Annotated[int, typer.Option(help="Fresh kernels kept started ahead.")] = 2,
    idle_seconds: Annotated[
        float, typer.Option(help="Exit after this long without a run (0: until Ctrl-C).", min=0)
    ] = 0,
    background: Annotated[
        bool, typer.Option("--background", hidden=True, help="Started by `workbench run`.")
    ] = False,
) -> None:
    """Keep warm kernels for `workbench run` on this database (until Ctrl-C or idle).

    `workbench run` starts one of these itself after a run that found none
    (WORKBENCH_WARM_WORKER_IDLE_SECONDS, 0 to start none)."""
    from workbench.runs.serve import serve, socket_path

    settings = _settings(ctx)
    if not background:
        where = escape(str(socket_path(settings)))
        console.print(f"serving runs on {where} with {kernels} kernels")
    serve(settings, size=kernels, idle_seconds=idle_seconds, background=background)


@runs_app.command("cancel")
def runs_cancel(ctx: typer.Context, run_id: RunIdArgument) -> None:
    """Cancel a queued or running run; a running notebook is stopped within about a second."""
    from workbench.runs.api import cancel

    with _workbench(ctx) as wb:
        run = cancel(run_id, workbench=wb)
    console.print(f"run {run.id} {run.status.value}")


@notebooks_app.command("params")
def notebooks_params(
    notebook: Annotated[
        Path,
        typer.Argument(
            help="The notebook: a path, or a name in a notebook folder.", dir_okay=False
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the schema as JSON.")] = False,
) -> None:
    """The typed parameters NOTEBOOK declares in its cell tagged `parameters`."""
    from workbench.runs.api import notebook_params
    from workbench.runs.notebook import locate_notebook

    schema = notebook_params(locate_notebook(notebook))
    if as_json:
        print_json(schema.to_dict())
        return
    table = Table(title=escape(notebook.name))
    table.add_column("name", no_wrap=True)
    table.add_column("type")
    table.add_column("default", no_wrap=True)
    table.add_column("description")
    for p in schema.parameters:
        default = _as_typed(p.default) if p.has_default else "(required)"
        table.add_row(
            escape(p.name), escape(p.type.describe()), escape(default), escape(p.description)
        )
    print_table(table)


def _as_typed(value: Any) -> str:
    """A default as the user would type it after `-p NAME`: 2013-01-01, 15, AA, true."""
    from workbench.runs.params import ParameterSchema

    plain = ParameterSchema.to_json({"value": value})["value"]
    if plain is None:
        return "(none)"
    if isinstance(plain, str):
        return plain if plain.strip() == plain and plain else json.dumps(plain)
    return json.dumps(plain, ensure_ascii=False)


@notebooks_app.command("list")
def notebooks_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """The notebooks of the notebook folders, which `workbench run NAME` finds by name."""
    from workbench.runs.notebook import list_notebooks

    found = list_notebooks(_settings(ctx))
    if as_json:
        rows = [
            {"folder": str(n.folder), "name": n.name, "parameters": n.parameters} for n in found
        ]
        print_json(rows)
        return
    if not found:
        console.print(
            "No notebooks in the notebook folders (./notebooks, $WORKBENCH_HOME/notebooks and "
            "those plugins register)."
        )
        return
    table = Table(title="Notebooks")
    table.add_column("folder", no_wrap=True)
    table.add_column("name", no_wrap=True)
    table.add_column("parameters")
    for n in found:
        count = "unreadable" if n.parameters is None else str(n.parameters)
        table.add_row(escape(str(n.folder)), escape(n.name), count)
    print_table(table)
