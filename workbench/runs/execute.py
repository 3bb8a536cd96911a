"""``execute_run(run_id)``: claim a queued run, execute its notebook, record the outcome.

The notebook is executed with nbclient (papermill's execution engine) on a fresh kernel from a
:class:`~workbench.runs.kernels.KernelPool`, without importing papermill itself (over a second
of start-up). The calling thread heartbeats the run row, stores progress, and stops the
kernel when the run is cancelled or passes its timeout. The same function serves the CLI,
``wb.run``, the local process pool and Celery; calling it for a run that is not queued
(already running elsewhere, or finished) changes nothing and returns its record.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from workbench.core.errors import WorkbenchError
from workbench.db.models import RunStatus
from workbench.db.types import utcnow
from workbench.runs import records, storage
from workbench.runs.errors import RunRefusedError
from workbench.runs.kernels import KernelPool, WarmKernel, bind_code, kernel_env
from workbench.runs.notebook import INJECTED_TAG, inject_parameters, load_notebook, notebook_schema
from workbench.runs.params import ParameterSchema
from workbench.runs.records import Run
from workbench.runs.results import RUN_ID_ENV, RUN_TOKEN_ENV

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from workbench.app import Workbench

__all__ = [
    "MAX_CELL_OUTPUT_CHARS",
    "Identity",
    "announce",
    "execute_run",
    "prepare_notebook",
    "run_identity",
    "token_hash",
]

log = logging.getLogger(__name__)
TICK_SECONDS = 0.25
MAX_CELL_OUTPUT_CHARS = 1_000_000
ProgressCallback = Callable[[Run | None, int, int], None]


@dataclass(frozen=True)
class Identity:
    """What a run's kernel receives at bind time, and nothing else of the service's.

    ``env``: its owner's database login (team mode) or the embedded database, the run's id
    and its token for ``wb.record``; ``secrets``: the values of the secrets its parameters
    reference, handed out of band; ``hidden``: every value the run's outputs, record and
    logs must not show (the secrets, the owner's password, the token).
    """

    env: dict[str, str]
    secrets: dict[str, str]
    hidden: tuple[str, ...]


@dataclass
class _State:
    """What the executing coroutine shares with the watching thread."""

    total: int = 0
    cell: int = 0
    cell_index: int = -1
    stop_reason: RunStatus | None = None
    stop: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None
    nb: NotebookNode | None = None
    kernel_started_at: Any = None
    outcome: dict[str, Any] = field(default_factory=dict)

    def request_stop(self, reason: RunStatus) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            if self.loop is not None and self.stop is not None:
                self.loop.call_soon_threadsafe(self.stop.set)


class _Client(NotebookClient):
    """nbclient with progress tracking and a cap on each cell's stored output."""

    def __init__(self, nb: NotebookNode, state: _State, **kw: Any) -> None:
        super().__init__(nb, **kw)
        self._state = state
        self._used: dict[int, int] = {}
        self.on_cell_execute = self._started

    def _started(self, cell: NotebookNode, cell_index: int) -> None:
        # Progress counts the notebook's own cells (see _original_cell); the injected
        # parameters cell keeps the count where it was.
        self._state.cell = _original_cell(self.nb, cell_index) or self._state.cell
        self._state.cell_index = cell_index

    def output(
        self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None, cell_index: int
    ) -> NotebookNode | None:
        used = self._used.get(cell_index, 0)
        if used > MAX_CELL_OUTPUT_CHARS:
            return None  # already truncated: drop the rest
        out = super().output(outs, msg, display_id, cell_index)
        if out is None:
            return None
        size = (
            len(json.dumps(out, default=str))
            if out.get("output_type") != "stream"
            else len(out.get("text", ""))
        )
        self._used[cell_index] = used + size
        if used + size > MAX_CELL_OUTPUT_CHARS:
            keep = max(0, MAX_CELL_OUTPUT_CHARS - used)
            if out.get("output_type") == "stream":
                out["text"] = out["text"][:keep]
            else:
                outs.remove(out)
            limit = f"{MAX_CELL_OUTPUT_CHARS:,}"
            outs.append(
                _stream("stderr", f"\n[workbench: cell output truncated at {limit} chars]\n")
            )
            self._used[cell_index] = MAX_CELL_OUTPUT_CHARS + 1
        return out


def _stream(name: str, text: str) -> NotebookNode:
    from nbformat import from_dict

    node: NotebookNode = from_dict({"output_type": "stream", "name": name, "text": text})  # type: ignore[no-untyped-call]
    return node


def prepare_notebook(wb: Workbench, run: Run) -> dict[str, Any]:
    """The run's notebook with its parameters validated again and injected."""
    nb = load_notebook(run.notebook)
    values = notebook_schema(nb).validate(run.parameters)
    nb = inject_parameters(nb, values)
    location = storage.run_location(wb.settings, run.id)
    nb.setdefault("metadata", {})["papermill"] = {
        "input_path": run.notebook,
        "output_path": f"{location}/{storage.NOTEBOOK_NAME}",
        "parameters": ParameterSchema.to_json(values),  # secrets are references only
        "run_id": str(run.id),
    }
    return nb


def _is_injected(cell: dict[str, Any]) -> bool:
    return INJECTED_TAG in cell.get("metadata", {}).get("tags", [])


def _original_cell(nb: NotebookNode | None, index: int) -> int | None:
    """1-based position of executed cell ``index`` in the notebook as written (no injection).

    The one numbering of cells everywhere (progress, the stored error, `runs logs`, the
    dashboards): every cell counts, markdown too, as JupyterLab shows them; the injected
    parameters cell never does.
    """
    if nb is None or index < 0:
        return None
    injected = [i for i, c in enumerate(nb.cells) if _is_injected(c)]
    if index in injected:
        return None
    return index + 1 - sum(1 for i in injected if i < index)


async def _execute(
    pool: KernelPool,
    nb: dict[str, Any],
    run: Run,
    identity: Identity,
    state: _State,
    cell_timeout: int | None,
) -> None:
    from nbformat import from_dict

    from workbench.runs.secrets import hand_over_code

    state.loop = asyncio.get_running_loop()
    state.stop = asyncio.Event()
    if state.stop_reason is not None:
        state.stop.set()
        return
    kernel: WarmKernel = await pool.acquire()
    state.kernel_started_at = kernel.started_at
    keep_kernel_for_later = False
    try:
        folder = os.path.dirname(os.path.abspath(run.notebook))
        handed = hand_over_code(identity.secrets) if identity.secrets else ""
        await kernel.run_silently(bind_code(identity.env, folder, handed))
        client = _Client(
            from_dict(nb),  # type: ignore[no-untyped-call]
            state,
            km=kernel.manager,
            timeout=cell_timeout,
            kernel_name=kernel.manager.kernel_name,
        )
        client.kc = kernel.client
        state.nb = client.nb
        task = asyncio.ensure_future(client.async_execute())
        stopper = asyncio.ensure_future(state.stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return
        error = task.exception()
        if error is None:
            keep_kernel_for_later = True  # a clean finish: shut it down off the hot path
        else:
            state.outcome = _describe(error, state)
    finally:
        if keep_kernel_for_later:
            pool.discard_later(kernel)
        else:
            await kernel.discard()


def _describe(error: BaseException, state: _State) -> dict[str, Any]:
    cell = _original_cell(state.nb, state.cell_index)
    where = f"cell {cell}" if cell else "the injected parameters cell"
    if isinstance(error, CellTimeoutError):
        return {
            "status": RunStatus.TIMED_OUT,
            "error_name": "CellTimeout",
            "error_message": f"{where} ran longer than the per-cell timeout.",
            "error_cell": cell,
        }
    if isinstance(error, CellExecutionError):
        name, value = error.ename, error.evalue
        if name == "SystemExit":
            message = f"The notebook called sys.exit({value}) in {where}."
        else:  # the name is error_name's: "ValueError: ValueError: ..." nowhere
            message = value or name
        return {
            "status": RunStatus.FAILED,
            "error_name": name[:200],
            "error_message": message[:10_000],
            "error_cell": cell,
        }
    if isinstance(error, DeadKernelError):
        return {
            "status": RunStatus.FAILED,
            "error_name": "KernelDied",
            "error_message": f"The kernel died while running {where} (the notebook ended its "
            "own process, e.g. with os._exit, or ran out of memory).",
            "error_cell": cell,
        }
    return {
        "status": RunStatus.FAILED,
        "error_name": type(error).__name__,
        "error_message": str(error)[:10_000] or type(error).__name__,
        "error_cell": cell,
    }


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


_cold_pools: dict[str, KernelPool] = {}
_cold_lock = threading.Lock()


def _cold_pool(wb: Workbench) -> KernelPool:
    """A pool without warm kernels (each run starts its own), one per database per process."""
    with _cold_lock:
        pool = _cold_pools.get(wb.database_url)
        if pool is None:
            from workbench.runs.sandbox import kernel_user

            pool = _cold_pools[wb.database_url] = KernelPool(
                0, env=kernel_env(), kernel_user=kernel_user(wb.settings)
            )
        return pool


def execute_run(
    run_id: str | uuid.UUID,
    *,
    workbench: Workbench | None = None,
    kernels: KernelPool | None = None,
    cell_timeout: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> Run:
    """Execute the queued run ``run_id`` and return its final record (see module docstring)."""
    from workbench.app import resolve

    wb = resolve(workbench)
    rid = records.parse_run_id(run_id)
    lease = wb.settings.run_lease_seconds  # the reaper retries or fails a run silent this long
    token = secrets.token_urlsafe(32)
    attempt = records.claim_run(
        wb, rid, worker=_worker_name(), lease_seconds=lease, run_token_hash=token_hash(token)
    )
    run = records.get_run(wb, rid)
    if attempt is None:
        return run
    announce(wb, run)
    try:
        identity = run_identity(wb, run, token)
    except RunRefusedError as exc:
        return _conclude(
            wb, run, attempt, RunStatus.REFUSED, retry=False,
            error_name="RunRefused", error_message=str(exc),
        )  # fmt: skip
    except WorkbenchError as exc:  # a secret that is gone, a login that cannot be made
        return _conclude(
            wb, run, attempt, RunStatus.FAILED, retry=False,
            error_name=type(exc).__name__, error_message=str(exc),
        )  # fmt: skip
    try:
        nb = prepare_notebook(wb, run)
    except WorkbenchError as exc:
        # The notebook or its parameters are wrong: another attempt would fail the same way.
        return _conclude(
            wb, run, attempt, RunStatus.FAILED, retry=False,
            error_name=type(exc).__name__, error_message=str(exc),
        )  # fmt: skip
    state = _State(total=sum(1 for c in nb["cells"] if not _is_injected(c)))
    pool = kernels or _cold_pool(wb)
    future = pool.submit(_execute(pool, nb, run, identity, state, cell_timeout))
    _watch(wb, run, attempt, state, future, on_progress)
    return _finish(wb, run, attempt, state, identity)


def token_hash(token: str) -> str:
    """How the run's row keeps its kernel's token: the hex SHA-256 the database compares."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def run_identity(wb: Workbench, run: Run, token: str) -> Identity:
    """The identity ``run``'s kernel gets: its owner's own login, never the service's.

    On the embedded database (one user) the kernel gets that database and home. In team mode
    it gets the owner's login; a run without an owner runs with the service's rights only when
    the service queued it for one of Workbench's own notebooks (inside the installed package,
    :func:`~workbench.runs.acts.is_service_notebook`); anything
    else, or an owner who is disabled, is refused (:class:`RunRefusedError`).
    """
    from workbench.db.identity_connect import user_database_url
    from workbench.runs.acts import is_service_notebook
    from workbench.runs.secrets import values_for_run

    env = {RUN_ID_ENV: str(run.id), RUN_TOKEN_ENV: token}
    hidden = [token]
    if wb.engine.dialect.name != "postgresql":
        env |= {
            "WORKBENCH_HOME": str(wb.settings.home_path),
            "WORKBENCH_DATABASE_URL": wb.database_url,
        }
    else:
        owner = records.run_owner(wb, run)
        if owner is None:
            if run.created_by is not None or not is_service_notebook(run.notebook):
                raise RunRefusedError(
                    f"Run {run.id} has no owner: in team mode every run belongs to an active "
                    "user. Queue it from the user's own login, or as an admin with `--as USER`."
                )
            env |= _service_env(wb)
        elif not owner.is_active:
            raise RunRefusedError(
                f"The run's owner {owner.username!r} is disabled, so it was not run. An admin "
                "can enable the account, or move the job to another owner with "
                "`workbench jobs transfer JOB --owner USER`."
            )
        else:
            url = user_database_url(wb.settings, owner, wb.database_url)
            env["WORKBENCH_DATABASE_URL"] = url.render_as_string(hide_password=False)
            if url.password:
                hidden.append(str(url.password))
    values = values_for_run(wb, run.parameters, team_id=run.team_id)
    hidden.extend(values.values())
    return Identity(env, values, tuple(hidden))


def _service_env(wb: Workbench) -> dict[str, str]:
    """The service's own rights, for Workbench's own notebooks only (see :func:`run_identity`)."""
    env = {"WORKBENCH_HOME": str(wb.settings.home_path), "WORKBENCH_DATABASE_URL": wb.database_url}
    key, _source = wb.settings.effective_secret_key()
    if key:
        env["WORKBENCH_SECRET_KEY"] = key
    return env


def _watch(
    wb: Workbench,
    run: Run,
    attempt: int,
    state: _State,
    future: Any,
    on_progress: ProgressCallback | None,
) -> None:
    """Heartbeat, store progress, and stop the run on cancellation or timeout."""
    deadline = time.monotonic() + run.timeout_seconds if run.timeout_seconds else None
    reported = (-1, -1)
    while True:
        try:
            future.result(timeout=TICK_SECONDS)
            return
        except TimeoutError:
            pass
        except BaseException as exc:
            state.outcome = _describe(exc, state)
            return
        if deadline is not None and time.monotonic() > deadline:
            state.request_stop(RunStatus.TIMED_OUT)
        progress = (state.cell, state.total)
        values: dict[str, Any] = {}
        if progress != reported:
            values = {"progress_cell": state.cell, "progress_total": state.total}
            if state.kernel_started_at is not None:
                values["kernel_started_at"] = state.kernel_started_at
        changed = records.heartbeat(
            wb, run.id, attempt, lease_seconds=wb.settings.run_lease_seconds, **values
        )
        if changed is not None:
            state.request_stop(RunStatus.CANCELLED)
        elif values:
            reported = progress
            if on_progress is not None:
                on_progress(None, state.cell, state.total)


def _finish(wb: Workbench, run: Run, attempt: int, state: _State, identity: Identity) -> Run:
    outcome = _redacted(dict(state.outcome), identity.hidden)
    cell = _original_cell(state.nb, state.cell_index)
    if state.stop_reason == RunStatus.TIMED_OUT:
        outcome = {
            "status": RunStatus.TIMED_OUT,
            "error_name": "RunTimeout",
            "error_message": f"The run passed its timeout of {run.timeout_seconds} s"
            + (f" in cell {cell}." if cell else "."),
            "error_cell": cell,
        }
    elif state.stop_reason == RunStatus.CANCELLED:
        outcome = {"status": RunStatus.CANCELLED}
    status = outcome.pop("status", RunStatus.SUCCEEDED)
    location = storage.run_location(wb.settings, run.id)
    extra: dict[str, Any] = {"output_uri": location}
    if state.nb is not None:
        _redacted(state.nb, identity.hidden)
        try:
            _store_outputs(location, state.nb, status, outcome)
        except WorkbenchError as exc:
            if status == RunStatus.SUCCEEDED:
                status = RunStatus.FAILED
                outcome = {"error_name": type(exc).__name__, "error_message": str(exc)}
    if state.kernel_started_at is not None:
        extra["kernel_started_at"] = state.kernel_started_at
    cell = state.total if status == RunStatus.SUCCEEDED else state.cell  # every cell ran
    return _conclude(
        wb, run, attempt, status,
        progress_cell=cell, progress_total=state.total, **extra, **outcome,
    )  # fmt: skip


_RETRYABLE = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT})


def _conclude(
    wb: Workbench, run: Run, attempt: int, status: RunStatus, *, retry: bool = True, **values: Any
) -> Run:
    """Record the attempt's outcome: re-queue it while attempts remain, else finish it."""
    if retry and status in _RETRYABLE and attempt < run.max_attempts:
        delay = records.retry_delay(_retry_base_seconds(wb, run), attempt)
        if records.requeue_for_retry(wb, run.id, attempt, utcnow() + delay, **values):
            return records.get_run(wb, run.id)
    records.finish_run(wb, run.id, attempt, status, **values)
    final = records.get_run(wb, run.id)
    announce(wb, final)
    return final


def _retry_base_seconds(wb: Workbench, run: Run) -> float:
    if run.job_id is None:
        return 0.0
    from workbench.db.models import Job

    with wb.session() as session:
        job = session.get(Job, run.job_id)
        return float(job.retry_delay_seconds) if job is not None else 0.0


def announce(wb: Workbench, run: Run) -> None:
    """Tell the plugins (and, for finished runs, the notifiers) of ``run``'s state; never
    raises. The executor calls it as a run starts and ends, the reaper for runs it failed."""
    from workbench.notify import notify_run

    try:
        event = records.run_event(run, job_name=records.job_name_of(wb, run))
        notify_run(wb.plugins, wb.settings, event)
    except Exception:  # a plugin's failure is logged by the plugin manager, not fatal here
        log.exception("notifying about run %s failed", run.id)


def _redacted(value: Any, hidden: tuple[str, ...]) -> Any:
    """``value`` (a notebook, an outcome) with every hidden value in its texts replaced by
    ``***``, in place: what a cell printed or raised never keeps a secret the run was handed."""
    from workbench.ops.logging import Redactor

    redactor = Redactor(list(hidden), url_passwords=False)  # outputs may be megabytes

    def walk(node: Any) -> Any:
        if type(node) is str:  # texts, not the statuses (a StrEnum) beside them
            return redactor.redact(node)
        if isinstance(node, dict):
            for key in list(node):
                node[key] = walk(node[key])
        elif isinstance(node, list):
            node[:] = [walk(item) for item in node]
        return node

    return walk(value)


def _store_outputs(
    location: str, nb: NotebookNode, status: RunStatus, outcome: dict[str, Any]
) -> None:
    import nbformat

    from workbench.runs.html import render_html

    meta = nb.metadata.setdefault("papermill", {})
    meta["end_time"] = utcnow().isoformat()
    meta["status"] = status.value
    meta["exception"] = bool(outcome.get("error_name"))
    storage.write_output(location, storage.NOTEBOOK_NAME, nbformat.writes(nb).encode("utf-8"))  # type: ignore[no-untyped-call]
    storage.write_output(location, storage.HTML_NAME, render_html(nb))
