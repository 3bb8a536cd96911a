"""How a run and a job show in a notebook: a one-line repr and a small HTML table.

Shared by the ORM rows (:mod:`workbench.db.models`) and the run snapshots the API returns
(``workbench.runs.records.Run``), which carry the same field names. A repr says what a person
needs at a glance in under ~200 characters; neither form shows a run's token hash, a job's
parameter values or a password in an output URL. Reading only values already loaded, a repr
never queries the database (a detached or expired row still shows).
"""

from __future__ import annotations

import contextlib
import html
import os
from datetime import datetime
from pathlib import PurePath
from typing import Any
from zoneinfo import ZoneInfo

from workbench.core.config import mask_url

__all__ = ["job_repr", "job_repr_html", "run_repr", "run_repr_html"]


def _get(record: object, name: str) -> Any:
    """``record.name`` if loaded (an ORM row's or a dataclass's own value), else ``None``."""
    return vars(record).get(name)


def _when(value: datetime | None, zone: str = "UTC") -> str:
    """A time in ``zone`` to the second (UTC if the zone is unknown here), or a dash."""
    if value is None:
        return "-"
    with contextlib.suppress(ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        value = value.astimezone(ZoneInfo(zone))
    return f"{value:%Y-%m-%d %H:%M:%S %Z}"


def _table(title: str, fields: list[tuple[str, str]]) -> str:
    """A titled two-column HTML table of ``fields``, every value escaped."""
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in fields
    )
    return f"<div><b>{html.escape(title)}</b><table>{rows}</table></div>"


#: Set by the Workbench server extension for its kernels: the server's base URL, under which
#: ``workbench/api/runs/<id>/output`` serves a run's output (a run's display links to it).
LAB_BASE_URL_VARIABLE = "WORKBENCH_LAB_BASE_URL"


def _output_link(run: object) -> str:
    """A link opening the run's output in this JupyterLab's browser tab, or ``""`` outside
    a server with the extension or for a run without output yet."""
    base = os.environ.get(LAB_BASE_URL_VARIABLE)
    if not base or not _get(run, "output_uri") or _get(run, "finished_at") is None:
        return ""
    href = f"{base.rstrip('/')}/workbench/api/runs/{_get(run, 'id')}/output"
    return (
        f"<a href='{html.escape(href, quote=True)}' target='_blank' rel='noopener'>"
        "open the output notebook</a>"
    )


def _notebook_name(record: object) -> str:
    return PurePath(_get(record, "notebook") or "?").name


def _took(record: object) -> str:
    started, finished = _get(record, "started_at"), _get(record, "finished_at")
    if started is None or finished is None:
        return ""
    return f"{(finished - started).total_seconds():.1f} s"


def _error(run: object) -> str:
    """``ValueError in cell 6``: the error's name and the cell as numbered in the notebook."""
    cell = _get(run, "error_cell")
    return f"{_get(run, 'error_name')}" + (f" in cell {cell}" if cell is not None else "")


def _error_text(run: object) -> str:
    """The error's message without its name in front (runs recorded before carry it twice)."""
    name, message = _get(run, "error_name") or "", _get(run, "error_message") or ""
    return message.removeprefix(f"{name}: ") if name else message


def run_repr(run: object) -> str:
    """``<Run ID STATUS NOTEBOOK started TIME, took N s; ERROR in cell N>`` (the message:
    ``error_message``)."""
    started = _get(run, "started_at")
    times = f"queued {_when(_get(run, 'queued_at'))}"
    if started is not None:
        times = f"started {_when(started)}" + (f", took {_took(run)}" if _took(run) else "")
    status = _get(run, "status")
    return (
        f"<Run {_get(run, 'id')} {status or '?'} {_notebook_name(run)} {times}"
        + (f"; {_error(run)}" if _get(run, "error_name") else "")
        + ">"
    )


def run_repr_html(run: object) -> str:
    """The run's status, notebook, times, attempt, output and error as an HTML table."""
    output = _get(run, "output_uri")
    status = _get(run, "status")
    fields = [
        ("status", str(status or "?")),
        ("notebook", str(_get(run, "notebook"))),
        ("queued", _when(_get(run, "queued_at"))),
        ("started", _when(_get(run, "started_at"))),
        ("finished", _when(_get(run, "finished_at"))),
        ("took", _took(run) or "-"),
        ("attempt", f"{_get(run, 'attempt')} of {_get(run, 'max_attempts')}"),
        ("output", mask_url(output) if output and "://" in output else output or "-"),
    ]
    if _get(run, "error_name"):
        message = _error_text(run)
        fields.append(("error", _error(run) + (f": {message}" if message else "")))
    return _table(f"Run {_get(run, 'id')}", fields) + _output_link(run)


def job_repr(job: object) -> str:
    """``<Job NAME NOTEBOOK 'CRON' ZONE, next TIME>`` (``on demand`` without a schedule)."""
    zone = _get(job, "timezone") or "UTC"
    schedule = _get(job, "schedule")
    when = f"{schedule!r} {zone}" if schedule else "on demand"
    next_run = _get(job, "next_run_at")
    upcoming = f", next {_when(next_run, zone)}" if next_run and schedule else ""
    paused = " paused" if _get(job, "paused") else ""
    return f"<Job {_get(job, 'name')} {_notebook_name(job)} {when}{upcoming}{paused}>"


def job_repr_html(job: object) -> str:
    """The job's notebook, schedule, next run and limits; its parameters by name only."""
    zone = _get(job, "timezone") or "UTC"
    timeout = _get(job, "timeout_seconds")
    return _table(
        f"Job {_get(job, 'name')}",
        [
            ("notebook", str(_get(job, "notebook"))),
            ("schedule", _get(job, "schedule") or "on demand"),
            ("time zone", zone),
            ("next run", _when(_get(job, "next_run_at"), zone)),
            ("paused", "yes" if _get(job, "paused") else "no"),
            ("retries", str(_get(job, "retries"))),
            ("timeout", f"{timeout} s" if timeout else "-"),
            ("parameters", ", ".join(sorted(_get(job, "parameters") or {})) or "-"),
        ],
    )
