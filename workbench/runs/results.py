"""Results a notebook records with ``wb.record(name, value)``, stored with its run.

Scalars and JSON are stored as JSON, DataFrames as Parquet, figures as PNG (matplotlib) or
Plotly JSON. Dashboards read them back with :func:`results` or :func:`latest_result`
instead of recomputing. Inside a run the kernel knows its run from ``WORKBENCH_RUN_ID``;
outside a run ``record`` only returns the value, so notebooks work interactively too.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, text
from sqlalchemy.exc import SQLAlchemyError

from workbench.core.errors import WorkbenchError
from workbench.db.models import Job, RunResult, RunStatus
from workbench.db.models import Run as RunRow
from workbench.runs.errors import ResultError
from workbench.runs.records import parse_run_id

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = [
    "RUN_ID_ENV",
    "RUN_TOKEN_ENV",
    "RecordedRun",
    "latest_result",
    "latest_scheduled_results",
    "record",
    "results",
    "warm_up",
]

#: Tells a run's kernel which run it is (set by runs.execute), so wb.record files results there.
RUN_ID_ENV = "WORKBENCH_RUN_ID"
#: The run's token: the database lets a login write results only for its own running run
#: whose row keeps this token's hash (``runs.run_token_hash``, set by the executor).
RUN_TOKEN_ENV = "WORKBENCH_RUN_TOKEN"  # noqa: S105 (a variable name, not a secret)
PARQUET = "application/vnd.apache.parquet"
PNG = "image/png"
PLOTLY = "application/vnd.plotly.v1+json"
_SCAN_LIMIT = 500


def _encode(value: Any) -> tuple[str, dict[str, Any] | None, bytes | None, str | None]:
    if value is None or isinstance(value, bool | int | float | str):
        return "scalar", {"value": value}, None, None
    if isinstance(value, datetime | date):
        kind = "datetime" if isinstance(value, datetime) else "date"
        return "scalar", {"value": value.isoformat(), "type": kind}, None, None
    module = type(value).__module__
    if module.startswith("pandas"):
        import pandas as pd

        frame = value.to_frame() if isinstance(value, pd.Series) else value
        if isinstance(frame, pd.DataFrame):
            buffer = io.BytesIO()
            frame.to_parquet(buffer)
            return "dataframe", None, buffer.getvalue(), PARQUET
    if hasattr(value, "savefig"):
        buffer = io.BytesIO()
        value.savefig(buffer, format="png", bbox_inches="tight")
        return "figure", None, buffer.getvalue(), PNG
    if hasattr(value, "to_plotly_json") and hasattr(value, "to_json"):
        return "figure", json.loads(value.to_json()), None, PLOTLY
    if isinstance(value, dict | list):
        try:
            return "json", {"value": json.loads(json.dumps(value))}, None, None
        except (TypeError, ValueError):
            pass
    raise ResultError(
        f"Cannot record a value of type {type(value).__name__}; record a number, string, "
        "date, JSON-like dict or list, a pandas DataFrame or a figure."
    )


def _decode(row: RunResult) -> Any:
    if row.kind == "dataframe" and row.payload is not None:
        import pandas as pd

        return pd.read_parquet(io.BytesIO(row.payload))
    if row.kind == "figure":
        return row.payload if row.content_type == PNG else row.value
    value = (row.value or {}).get("value")
    kind = (row.value or {}).get("type")
    if kind == "date":
        return date.fromisoformat(str(value))
    if kind == "datetime":
        return datetime.fromisoformat(str(value))
    return value


def warm_up() -> None:
    """Import the Parquet reader recorded frames are decoded with, ahead of the first read."""
    import pandas as pd

    _kind, _value, payload, _type = _encode(pd.DataFrame({"x": [1]}))
    pd.read_parquet(io.BytesIO(payload or b""))


def record(name: str, value: Any, *, workbench: Workbench | None = None) -> Any:
    """Store ``value`` as result ``name`` of the current run (replacing one of that name)."""
    if not isinstance(name, str) or not name or len(name) > 200:
        raise ResultError("A result name is a non-empty string of at most 200 characters.")
    run_id = os.environ.get(RUN_ID_ENV)
    if not run_id:
        return value
    kind, payload_json, payload, content_type = _encode(value)
    from workbench.app import resolve

    wb = resolve(workbench)
    rid = uuid.UUID(run_id)
    try:
        _store(wb, rid, name, kind, payload_json, payload, content_type)
    except SQLAlchemyError:
        raise ResultError(
            f"Result {name!r} was not recorded: results can be recorded only by a run, from "
            "its own kernel, while it is running."
        ) from None
    return value


def _store(
    wb: Workbench,
    rid: uuid.UUID,
    name: str,
    kind: str,
    payload_json: dict[str, Any] | None,
    payload: bytes | None,
    content_type: str | None,
) -> None:
    with wb.session(writing=True) as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            session.execute(
                text("SELECT set_config('workbench.run_token', :token, true)"),
                {"token": os.environ.get(RUN_TOKEN_ENV, "")},
            )
        session.execute(delete(RunResult).where(RunResult.run_id == rid, RunResult.name == name))
        session.add(
            RunResult(
                run_id=rid,
                name=name,
                kind=kind,
                value=payload_json,
                payload=payload,
                content_type=content_type,
            )
        )


def results(run_id: str | uuid.UUID, *, workbench: Workbench | None = None) -> dict[str, Any]:
    """Every result recorded by run ``run_id``, by name."""
    from workbench.app import resolve

    wb = resolve(workbench)
    rid = parse_run_id(run_id)
    with wb.session() as session:
        rows = session.scalars(select(RunResult).where(RunResult.run_id == rid))
        return {row.name: _decode(row) for row in rows}


def _defaults(path: str) -> dict[str, Any]:
    """The notebook's declared defaults as JSON, so a run that kept a default matches it."""
    from workbench.runs.notebook import notebook_schema, read_notebook
    from workbench.runs.params import ParameterSchema

    try:  # the parameters cell's source is all it takes: no nbformat (slow to import)
        schema = notebook_schema(read_notebook(path))
    except (TypeError, KeyError, WorkbenchError):
        return {}
    return ParameterSchema.to_json({p.name: p.default for p in schema.parameters if p.has_default})


def latest_result(
    notebook: str | Path, name: str, *, workbench: Workbench | None = None, **params: Any
) -> Any:
    """Result ``name`` of the newest succeeded run of ``notebook`` with these parameters.

    ``params`` must match the run's recorded parameters (a subset; typed values compare as
    their JSON form). Raises :class:`ResultError` when no such run recorded ``name``.
    """
    from workbench.app import resolve
    from workbench.runs.params import ParameterSchema

    wb = resolve(workbench)
    path = str(Path(notebook).expanduser().resolve())
    wanted = ParameterSchema.to_json(params)
    defaults = _defaults(path)
    query = (
        select(RunRow.id, RunRow.parameters)
        .where(RunRow.notebook == path, RunRow.status == RunStatus.SUCCEEDED)
        .order_by(RunRow.finished_at.desc())
        .limit(_SCAN_LIMIT)
    )
    with wb.session() as session:
        for run_id, recorded in session.execute(query):
            effective = {**defaults, **(recorded or {})}
            if any(effective.get(k) != v for k, v in wanted.items()):
                continue
            row = session.scalar(
                select(RunResult).where(RunResult.run_id == run_id, RunResult.name == name)
            )
            if row is not None:
                return _decode(row)
    raise ResultError(
        f"No succeeded run of {path} with these parameters recorded a result {name!r}."
    )


@dataclass(frozen=True)
class RecordedRun:
    """Results recorded by one finished run of a job, for a dashboard's freshness line."""

    run_id: uuid.UUID
    job: str
    finished_at: datetime
    values: dict[str, Any]


def latest_scheduled_results(
    notebook_name: str,
    names: Sequence[str],
    *,
    workbench: Workbench,
    **params: Any,
) -> RecordedRun | None:
    """The newest succeeded run of a job whose notebook file is called ``notebook_name`` and
    whose parameters match ``params`` (with the notebook's defaults, as in
    :func:`latest_result`) that recorded every one of ``names``; ``None`` if there is none.

    Reads with ``workbench``'s own login, so on PostgreSQL only runs (and results) that login
    may see under row-level security are considered: a viewer's workbench sees its teams'.
    A parameter the run did not record, of a notebook file that cannot be read here, counts
    as matching (the run kept its default).
    """
    from workbench.runs.params import ParameterSchema

    wanted = ParameterSchema.to_json(params)
    query = (
        select(RunRow.id, RunRow.notebook, RunRow.parameters, RunRow.finished_at, Job.name)
        .join(Job, Job.id == RunRow.job_id)
        .where(
            RunRow.status == RunStatus.SUCCEEDED,
            RunRow.finished_at.is_not(None),
            RunRow.notebook.endswith(notebook_name, autoescape=True),
        )
        .order_by(RunRow.finished_at.desc())
        .limit(_SCAN_LIMIT)
    )
    defaults: dict[str, dict[str, Any]] = {}
    with workbench.session() as session:
        for run_id, path, recorded, finished_at, job in session.execute(query):
            if Path(path).name != notebook_name:
                continue
            if path not in defaults:
                defaults[path] = _defaults(path)
            effective = {**defaults[path], **(recorded or {})}
            if any(k in effective and effective[k] != v for k, v in wanted.items()):
                continue
            rows = session.scalars(
                select(RunResult).where(RunResult.run_id == run_id, RunResult.name.in_(names))
            ).all()
            if {row.name for row in rows} >= set(names):
                values = {row.name: _decode(row) for row in rows}
                return RecordedRun(run_id, str(job), finished_at, values)
    return None
