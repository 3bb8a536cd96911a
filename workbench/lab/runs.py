"""The runs routes of the API: list, queue (with typed parameters), show, cancel, output.

Everything goes through the task API with the server's own login (:mod:`workbench.lab.seat`):
in team mode the database decides which runs the analyst sees and may cancel, and another
team's run is not found. A run is queued here; a scheduler (or worker) executes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.web

from workbench.lab.errors import RequestError
from workbench.lab.handlers import WorkbenchHandler, plain
from workbench.runs import storage
from workbench.runs.errors import StorageError

__all__ = ["RUN_ROUTES"]

SUMMARY = (
    "id", "notebook", "status", "queued_at", "started_at", "finished_at", "progress_cell",
    "progress_total", "triggered_by", "error_name", "error_cell",
)  # fmt: skip
#: Run outputs served as files of their own origin: scripts in an output never run with the
#: analyst's Jupyter session.
OUTPUT_POLICY = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
OUTPUTS = {"html": storage.HTML_NAME, "ipynb": storage.NOTEBOOK_NAME}


def _record(run: Any, root: Path, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A run as JSON; ``path`` is its notebook relative to the server's folder ``root`` (what
    JupyterLab opens, to show the failing cell), or null when the notebook is elsewhere."""
    fields = dict(vars(run))
    record = {n: fields[n] for n in names} if names else fields
    record["duration_seconds"] = run.duration
    notebook = Path(run.notebook)
    inside = notebook.is_relative_to(root)
    record["path"] = notebook.relative_to(root).as_posix() if inside else None
    return {k: plain(v) for k, v in record.items()}


class RunsHandler(WorkbenchHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        from workbench.runs.api import runs

        try:
            limit = int(self.get_query_argument("limit", "20"))
        except ValueError:
            raise RequestError("limit must be a whole number.") from None
        if not 1 <= limit <= 500:
            raise RequestError("limit must be between 1 and 500.")
        notebook = self.get_query_argument("notebook", None)
        path = str(self.notebook_path(notebook)) if notebook else None
        status = self.get_query_argument("status", None)
        found = runs(limit=limit, notebook=path, status=status, workbench=self.workbench)
        root = self.root
        self.reply({"runs": [_record(run, root, SUMMARY) for run in found]})

    @tornado.web.authenticated
    def post(self) -> None:
        from workbench.runs.api import notebook_params, queue_run

        body = self.body()
        path = self.notebook_path(str(body.get("notebook", "")))
        parameters = body.get("parameters", {})
        typed = body.get("parameters_text", {})
        timeout = body.get("timeout")
        if not isinstance(parameters, dict):
            raise RequestError("parameters must be an object of names to values.")
        if not isinstance(typed, dict) or not all(isinstance(v, str) for v in typed.values()):
            raise RequestError("parameters_text must be an object of names to typed text.")
        if typed:  # what a person typed into a form, read as `workbench run -p` reads it
            parameters = {**parameters, **notebook_params(path).parse_text(typed)}
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)):
            raise RequestError("timeout must be a whole number of seconds.")
        run_id = queue_run(
            path,
            parameters,
            timeout=timeout,
            triggered_by="lab",
            team=body.get("team"),
            workbench=self.workbench,
        )
        self.set_status(201)
        self.reply({"id": str(run_id)})


class RunHandler(WorkbenchHandler):
    @tornado.web.authenticated
    def get(self, run_id: str) -> None:
        from workbench.runs.api import show

        self.reply(_record(show(run_id, workbench=self.workbench), self.root))


class CancelHandler(WorkbenchHandler):
    @tornado.web.authenticated
    def post(self, run_id: str) -> None:
        from workbench.runs.api import cancel

        self.reply(_record(cancel(run_id, workbench=self.workbench), self.root))


class RerunHandler(WorkbenchHandler):
    """Queue the notebook of a run again with its parameters (secret references stay
    references), as the server's login: another team's run is not found."""

    @tornado.web.authenticated
    def post(self, run_id: str) -> None:
        from workbench.runs.api import queue_run, show

        run = show(run_id, workbench=self.workbench)
        queued = queue_run(
            run.notebook,
            dict(run.parameters or {}),
            timeout=run.timeout_seconds,
            triggered_by="lab",
            workbench=self.workbench,
        )
        self.set_status(201)
        self.reply({"id": str(queued), "rerun_of": str(run.id)})


class OutputHandler(WorkbenchHandler):
    @tornado.web.authenticated
    def get(self, run_id: str) -> None:
        from workbench.runs.api import show

        kind = self.get_query_argument("format", "html")
        if kind not in OUTPUTS:
            raise RequestError("format must be html or ipynb.")
        run = show(run_id, workbench=self.workbench)
        if self.seat.mode == "team":
            raise StorageError(
                "In team mode a run's output stays with the service that ran it: open it from "
                f"the dashboards server at /runs/{run.id}/output."
            )
        location = storage.run_location(self.workbench.settings, run.id)
        data = storage.read_output(location, OUTPUTS[kind])
        media = "text/html; charset=utf-8" if kind == "html" else "application/x-ipynb+json"
        self.set_header("Content-Security-Policy", OUTPUT_POLICY)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.finish(data, set_content_type=media)


RUN_ROUTES: list[tuple[str, type[WorkbenchHandler]]] = [
    ("/runs", RunsHandler),
    (r"/runs/(?P<run_id>[0-9a-fA-F-]{4,36})", RunHandler),
    (r"/runs/(?P<run_id>[0-9a-fA-F-]{4,36})/cancel", CancelHandler),
    (r"/runs/(?P<run_id>[0-9a-fA-F-]{4,36})/rerun", RerunHandler),
    (r"/runs/(?P<run_id>[0-9a-fA-F-]{4,36})/output", OutputHandler),
]
