"""The JSON REST API under ``/workbench/api/``: who the server acts as, the tables it may
read and their columns, and the typed parameters of a notebook.

Every handler is jupyter_server's ``APIHandler`` behind ``@tornado.web.authenticated`` (the
server's token or the hub's sign-in; a request that changes state must also pass its XSRF
check). A WorkbenchError a handler lets out is answered as JSON ``{"message", "error"}`` with
the status of its kind (:data:`STATUSES`): 400 for bad input, 403, 404 for what does not exist
or may not be seen, 409; the table list answers 503 when the database does not.
The server acts with its own database login (see :mod:`workbench.lab.seat`).
"""

from __future__ import annotations

import enum
import json
import uuid
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler

from workbench.core.errors import WorkbenchError
from workbench.core.version import __version__
from workbench.data.catalog import describe_table, list_tables
from workbench.data.errors import TableNotFoundError
from workbench.lab.errors import RequestError, RequestNotFoundError
from workbench.lab.schema import json_schema
from workbench.lab.seat import Seat
from workbench.runs.errors import (
    RunNotFoundError,
    RunPermissionError,
    RunStateError,
    StorageError,
)
from workbench.runs.notebook import NOTEBOOK_SUFFIX, notebook_schema, read_notebook
from workbench.scheduler.errors import JobNotFoundError, JobPermissionError

__all__ = ["API", "BASIC_ROUTES", "WorkbenchHandler", "plain"]

API = "/workbench/api"
#: The status of each kind of refusal; any other WorkbenchError is bad input (400).
STATUSES: tuple[tuple[type[WorkbenchError], int], ...] = (
    (TableNotFoundError, 404),
    (RunNotFoundError, 404),
    (JobNotFoundError, 404),
    (StorageError, 404),
    (RunPermissionError, 403),
    (JobPermissionError, 403),
    (RunStateError, 409),
)


def status_of(exc: WorkbenchError) -> int:
    if isinstance(exc, RequestError):
        return exc.status
    return next((status for kind, status in STATUSES if isinstance(exc, kind)), 400)


def plain(value: Any) -> Any:
    """``value`` with UUIDs, datetimes and enums as JSON text."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


class WorkbenchHandler(APIHandler):
    """A handler of the Workbench API: JSON in and out, WorkbenchError as a JSON status."""

    async def prepare(self) -> None:  # type: ignore[override]  # as APIHandler's own
        """Signed-in clients of a server whose workbench could not open get its reason."""
        await super().prepare()
        problem = self.settings.get("workbench_unavailable")
        if problem and self.current_user and not self._finished:
            self.refuse(503, problem)

    @property
    def workbench(self) -> Any:
        return self.settings["workbench"]

    @property
    def seat(self) -> Seat:
        seat: Seat = self.settings["workbench_seat"]
        return seat

    def reply(self, body: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    def body(self) -> dict[str, Any]:
        """The request's JSON object (:class:`RequestError` when it is not one)."""
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise RequestError("The request body must be a JSON object.")
        return body

    @property
    def root(self) -> Path:
        """The server's folder (resolved), which the API's notebook paths are relative to."""
        return Path(self.settings["server_root_dir"]).resolve()

    def notebook_path(self, path: str) -> Path:
        """``path`` (relative to the server's folder) as a notebook in it; refused when it
        is no notebook (400) or outside the folder or missing (404)."""
        root = self.root
        if not path or not path.endswith(NOTEBOOK_SUFFIX):
            raise RequestError("Give a notebook (.ipynb) relative to the server's folder.")
        target = (root / path.lstrip("/")).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise RequestNotFoundError(f"No notebook {path!r} in the server's folder.")
        return target

    def refuse(self, status: int, exc: WorkbenchError | str) -> None:
        self.set_status(status)
        if isinstance(exc, RequestError):
            name = {400: "BadRequest", 404: "NotFound"}.get(exc.status, "Error")
        elif isinstance(exc, WorkbenchError):
            name = type(exc).__name__
        else:
            name = {400: "BadRequest", 404: "NotFound"}.get(status, "Error")
        answer: dict[str, Any] = {"message": str(exc), "error": name}
        fields = getattr(exc, "parameters", ())
        if fields:  # a form shows the message at these fields
            answer["parameters"] = list(fields)
        self.reply(answer)

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """A refusal is one line in the log; anything else keeps its traceback."""
        if isinstance(value, WorkbenchError):
            self.log.info("%s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A WorkbenchError a handler let out is answered with its status (:data:`STATUSES`)
        and message; anything else as jupyter_server answers it."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, WorkbenchError):
            self.refuse(status_of(exc), exc)
            return
        super().write_error(status_code, **kwargs)


class WhoAmIHandler(WorkbenchHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        user = self.current_user
        self.reply(
            {
                "user": getattr(user, "username", None) or getattr(user, "name", None),
                "mode": self.seat.mode,
                "database": self.seat.dialect,
                "login": self.seat.login,
                "version": __version__,
            }
        )


class TablesHandler(WorkbenchHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        try:
            frame = list_tables(self.workbench)
        except WorkbenchError as exc:
            self.refuse(503, exc)
            return
        tables = [
            {
                "name": row["name"],
                "last_write_at": plain(row["last_write_at"]),
                "last_write_mode": row["last_write_mode"],
                "last_write_rows": None
                if row["last_write_rows"] is None
                else int(row["last_write_rows"]),
            }
            for row in frame.astype(object).where(frame.notna(), None).to_dict("records")
        ]
        self.reply({"tables": tables})


class TableHandler(WorkbenchHandler):
    @tornado.web.authenticated
    def get(self, name: str) -> None:
        table = describe_table(self.workbench, name)
        self.reply(
            {
                "name": table.name,
                "rows": table.rows,
                "owner": table.owner,
                "columns": [
                    {
                        "name": c.name,
                        "database_type": c.database_type,
                        "dtype": c.dtype,
                        "nullable": c.nullable,
                    }
                    for c in table.columns
                ],
                "last_write_at": plain(table.last_write_at),
                "last_write_mode": table.last_write_mode,
                "last_write_rows": table.last_write_rows,
            }
        )


class ShareHandler(WorkbenchHandler):
    """Let a team (``{"team": null}``: everyone) read a table of the analyst's team; the
    database checks the analyst may (team mode only)."""

    @tornado.web.authenticated
    def post(self, name: str) -> None:
        from workbench.accounts.api import share

        body = self.body()
        team = body.get("team")
        if team is not None and not isinstance(team, str):
            raise RequestError("team must be a team's name, or null for every user.")
        share(name, team, workbench=self.workbench)
        self.reply({"table": name, "shared_with": team})


class ParamsHandler(WorkbenchHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        path = self.get_query_argument("path", "")
        target = self.notebook_path(path)
        schema = notebook_schema(read_notebook(target))  # refused (400) if it is no notebook
        self.reply({"path": path, "schema": json_schema(schema, title=target.stem)})


class SecretsHandler(WorkbenchHandler):
    """The names of the secrets this login may use in a run's parameters (`secret:NAME`):
    its teams' and the global ones. Names only; a value never leaves the service."""

    @tornado.web.authenticated
    def get(self) -> None:
        from workbench.runs.secrets import list_secrets

        found = list_secrets(self.workbench, team=self.get_query_argument("team", None))
        names = sorted({secret.name for secret in found})
        self.reply({"secrets": [{"name": name, "reference": f"secret:{name}"} for name in names]})


BASIC_ROUTES: list[tuple[str, type[WorkbenchHandler]]] = [
    ("/whoami", WhoAmIHandler),
    ("/tables", TablesHandler),
    (r"/tables/(?P<name>[^/]+)", TableHandler),
    (r"/tables/(?P<name>[^/]+)/share", ShareHandler),
    ("/params", ParamsHandler),
    ("/secrets", SecretsHandler),
]
