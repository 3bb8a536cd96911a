"""The public surface of notebook runs: ``wb.run``, ``wb.queue_run``, ``wb.Worker`` and more.

Parameters are validated against the notebook's typed schema, and secrets checked to exist,
before any kernel starts; a run is then recorded as queued and executed by
:func:`~workbench.runs.execute.execute_run`, on a warm :class:`Worker` when one is given.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.app import public_api, resolve
from workbench.db.models import RunStatus
from workbench.runs.errors import ParameterError, RunStateError
from workbench.runs.notebook import load_notebook, locate_notebook, notebook_schema
from workbench.runs.params import ParameterSchema
from workbench.runs.records import Run, cancel_run, create_run, get_run, list_runs
from workbench.runs.results import latest_result, record, results

if TYPE_CHECKING:
    from workbench.app import Workbench
    from workbench.runs.execute import ProgressCallback
    from workbench.runs.kernels import KernelPool

__all__ = [
    "Run",
    "Worker",
    "cancel",
    "executed_by_service",
    "latest_result",
    "notebook_params",
    "queue_run",
    "record",
    "results",
    "run",
    "runs",
    "show",
    "wait",
]


def notebook_params(notebook: str | Path) -> ParameterSchema:
    """The typed parameter schema of ``notebook`` (its cell tagged ``parameters``)."""
    return notebook_schema(load_notebook(notebook))


def queue_run(
    notebook: str | Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    timeout: int | None = None,
    triggered_by: str = "api",
    max_attempts: int = 1,
    owner: str | None = None,
    team: str | None = None,
    workbench: Workbench | None = None,
) -> uuid.UUID:
    """Validate ``parameters`` and record a queued run of ``notebook``; its id.

    Nothing runs yet: :func:`~workbench.runs.execute.execute_run` (or a scheduler) runs it.
    In team mode the run belongs to a user and a team: from a user's own login, to them and
    ``team`` (needed when they have several); the service names the ``owner`` (a username)
    and, when the owner has several teams, the ``team``.
    """
    from workbench.runs.secrets import check_references, referenced_names, team_for_new_run
    from workbench.runs.storage import default_base

    wb = resolve(workbench)
    path = locate_notebook(notebook, wb.settings)
    values = notebook_params(path).validate(dict(parameters or {}))
    if referenced_names(values):  # each must be a secret the run's team may use
        team_id = team_for_new_run(wb, path, owner=owner, team=team)
        check_references(wb, values, team_id=team_id)
    if timeout is not None and timeout <= 0:
        raise ParameterError("The run timeout must be a positive number of seconds.")
    return create_run(
        wb,
        path,
        ParameterSchema.to_json(values),
        output_base=default_base(wb.settings),
        timeout_seconds=timeout,
        triggered_by=triggered_by,
        max_attempts=max_attempts,
        owner=owner,
        team=team,
    )


def run(
    notebook: str | Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    timeout: int | None = None,
    cell_timeout: int | None = None,
    worker: Worker | None = None,
    workbench: Workbench | None = None,
    on_progress: ProgressCallback | None = None,
    owner: str | None = None,
    team: str | None = None,
    **params: Any,
) -> Run:
    """Run ``notebook`` with ``params`` now and return its finished record.

    A failing notebook does not raise: look at ``Run.status`` and ``Run.error_message``.
    ``parameters`` takes names that clash with these options (e.g. ``timeout``, ``team``).
    ``owner`` and ``team`` are those of :func:`queue_run`. From a user's own login in team
    mode the service executes the run, as that user, and this waits for it (:func:`wait`).
    """
    from workbench.runs.execute import execute_run

    wb = worker.workbench if worker is not None else resolve(workbench)
    by_service = executed_by_service(wb)
    if by_service and cell_timeout is not None:
        raise ParameterError(
            "cell_timeout applies to runs executed in this process; the service executes the "
            "runs of your own login: give the run a timeout instead."
        )
    run_id = queue_run(
        notebook,
        {**(parameters or {}), **params},
        timeout=timeout,
        owner=owner,
        team=team,
        workbench=wb,
    )
    if by_service:
        return wait(run_id, workbench=wb, on_progress=on_progress)
    return execute_run(
        run_id,
        workbench=wb,
        kernels=worker.kernels if worker is not None else None,
        cell_timeout=cell_timeout,
        on_progress=on_progress,
    )


def executed_by_service(wb: Workbench) -> bool:
    """Whether runs queued on ``wb`` are executed by the service (a user's own login)."""
    from workbench.runs.acts import acts_as_user

    with wb.engine.connect() as connection:
        return acts_as_user(connection)


def wait(
    run_id: str | uuid.UUID,
    *,
    pickup_timeout: float = 60.0,
    poll: float = 0.25,
    workbench: Workbench | None = None,
    on_progress: ProgressCallback | None = None,
) -> Run:
    """Wait until run ``run_id`` (executed elsewhere: the scheduler, a worker) has finished.

    ``on_progress`` hears of each cell the run starts. A run that no executor has picked up
    within ``pickup_timeout`` seconds stays queued, and RunStateError says so.
    """
    wb = resolve(workbench)
    started = time.monotonic()
    seen = -1
    while True:
        found = get_run(wb, run_id)
        if found.finished:
            return found
        if found.progress_cell != seen and found.status == RunStatus.RUNNING:
            seen = found.progress_cell
            if on_progress is not None:
                on_progress(found, found.progress_cell, found.progress_total)
        if found.status == RunStatus.QUEUED and time.monotonic() - started > pickup_timeout:
            raise RunStateError(
                f"Run {found.id} is still queued after {pickup_timeout:.0f} s: no scheduler or "
                "worker has picked it up. Is `workbench scheduler` running for this database? "
                f"The run stays queued (`workbench runs cancel {found.id}` cancels it)."
            )
        time.sleep(poll)


def runs(
    *,
    limit: int = 20,
    notebook: str | None = None,
    status: str | None = None,
    workbench: Workbench | None = None,
) -> list[Run]:
    """The newest runs the login may see (a user: their teams'), of one notebook or status."""
    if notebook:
        notebook = str(Path(notebook).expanduser().resolve())
    return list_runs(resolve(workbench), limit=limit, notebook=notebook, status=status)


def cancel(run_id: str | uuid.UUID, *, workbench: Workbench | None = None) -> Run:
    """Cancel a queued or running run (a running one stops within about a second).

    A user's own login cancels only their teams' runs; another team's run is not found.
    """
    return cancel_run(resolve(workbench), run_id)


def show(run_id: str | uuid.UUID, *, workbench: Workbench | None = None) -> Run:
    """The record of run ``run_id``."""
    return get_run(resolve(workbench), run_id)


class Worker:
    """A long-lived runner that keeps ``size`` fresh kernels started ahead of runs.

    ``owner`` and ``team`` are those of :func:`queue_run` for the runs it queues (a run may
    name its own).
    """

    def __init__(
        self,
        size: int = 1,
        *,
        workbench: Workbench | None = None,
        kernels: KernelPool | None = None,
        owner: str | None = None,
        team: str | None = None,
    ) -> None:
        from workbench.runs.kernels import KernelPool, kernel_env
        from workbench.runs.sandbox import kernel_user

        self.workbench = resolve(workbench)
        self.owner, self.team = owner, team
        env = kernel_env()
        self._owns_kernels = kernels is None
        self.kernels: KernelPool = kernels or KernelPool(
            size, env=env, kernel_user=kernel_user(self.workbench.settings)
        )

    @public_api
    def run(self, notebook: str | Path, **options: Any) -> Run:
        """Like :func:`run`, on one of this worker's warm kernels."""
        return run(notebook, worker=self, **{"owner": self.owner, "team": self.team, **options})

    @public_api
    def execute(self, run_id: str | uuid.UUID) -> Run:
        """Execute an already queued run on a warm kernel."""
        from workbench.runs.execute import execute_run

        return execute_run(run_id, workbench=self.workbench, kernels=self.kernels)

    def close(self) -> None:
        """Shut down the kernels this worker started (not a pool it was given)."""
        if self._owns_kernels:
            self.kernels.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
