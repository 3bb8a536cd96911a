"""The jobs routes of the API: list, register or update, show with the next run times,
pause, resume, trigger, delete.

As the runs routes, everything goes through the task API with the server's own login: in
team mode a job the analyst saves is theirs, and another team's job is not found. Schedules
live in Workbench's scheduler, so a job keeps running after its analyst's server stops.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import tornado.web

from workbench.lab.errors import RequestError
from workbench.lab.handlers import WorkbenchHandler, plain

__all__ = ["JOB_ROUTES"]

#: The job fields a client may give when it registers or updates a job.
OPTIONS = (
    "schedule", "timezone", "parameters", "retries", "retry_delay", "timeout",
    "max_concurrency", "catchup", "catchup_limit", "team",
)  # fmt: skip
NEXT_RUNS = 5


def _record(job: Any) -> dict[str, Any]:
    record = {column.name: getattr(job, column.name) for column in job.__table__.columns}
    return {k: plain(v) for k, v in record.items()}


def _last(run: Any) -> dict[str, Any] | None:
    """The summary of a job's newest run, or ``None`` before its first."""
    if run is None:
        return None
    return {
        "id": str(run.id),
        "status": plain(run.status),
        "queued_at": plain(run.queued_at),
        "finished_at": plain(run.finished_at),
    }


def _next_runs(job: Any, count: int = NEXT_RUNS) -> list[str]:
    """The next ``count`` run times of the job's schedule (none when paused or on demand)."""
    from workbench.scheduler.cron import next_slots

    if not job.schedule or job.paused or job.next_run_at is None:
        return []
    first = job.next_run_at.replace(tzinfo=job.next_run_at.tzinfo or UTC)
    later = next_slots(job.schedule, job.timezone, first, count - 1)
    return [slot.isoformat() for slot in (first, *later)]


#: The JSON types each option takes (booleans are refused where a number is meant).
TYPES: dict[str, tuple[type, ...]] = {
    "schedule": (str, type(None)), "timezone": (str,), "parameters": (dict,),
    "retries": (int,), "retry_delay": (int, float), "timeout": (int, float),
    "max_concurrency": (int,), "catchup": (str,), "catchup_limit": (int,), "team": (str,),
}  # fmt: skip


def _wrong_types(options: dict[str, Any]) -> list[str]:
    return [
        name
        for name, value in options.items()
        if isinstance(value, bool) or not isinstance(value, TYPES[name])
    ]


class JobReplies(WorkbenchHandler):
    """What the jobs routes share: a job's answer, and its team from ``?team=`` (needed when
    several teams have a job of that name)."""

    def reply_job(self, job: Any) -> None:
        self.reply({**_record(job), "next_runs": _next_runs(job)})

    def team(self) -> str | None:
        return self.get_query_argument("team", None)


class JobsHandler(JobReplies):
    @tornado.web.authenticated
    def get(self) -> None:
        from workbench.scheduler.api import last_runs, list_jobs

        jobs = list_jobs(workbench=self.workbench)
        last = last_runs(jobs, workbench=self.workbench)
        self.reply(
            {"jobs": [{**_record(job), "last_run": _last(last.get(job.id))} for job in jobs]}
        )

    @tornado.web.authenticated
    def post(self) -> None:
        from workbench.scheduler.api import register

        body = self.body()
        unknown = sorted(set(body) - {"name", "notebook", "parameters_text", *OPTIONS})
        if unknown:
            raise RequestError(f"Unknown job field(s): {', '.join(unknown)}.")
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise RequestError("Give the job a name.")
        notebook = self.notebook_path(str(body.get("notebook", "")))
        options = {k: body[k] for k in OPTIONS if k in body}
        wrong = _wrong_types(options)
        if wrong:
            raise RequestError(f"Wrong type for {', '.join(wrong)} (see the API's document).")
        typed = body.get("parameters_text", {})
        if not isinstance(typed, dict) or not all(isinstance(v, str) for v in typed.values()):
            raise RequestError("parameters_text must be an object of names to typed text.")
        if typed:  # what a person typed into a form, read as `workbench jobs add -p` reads it
            from workbench.runs.api import notebook_params

            parsed = notebook_params(notebook).parse_text(typed)
            options["parameters"] = {**options.get("parameters", {}), **parsed}
        job = register(name, str(notebook), workbench=self.workbench, **options)
        self.reply_job(job)


class JobHandler(JobReplies):
    @tornado.web.authenticated
    def get(self, name: str) -> None:
        from workbench.scheduler.api import get

        self.reply_job(get(name, team=self.team(), workbench=self.workbench))

    @tornado.web.authenticated
    def delete(self, name: str) -> None:
        from workbench.scheduler.api import delete

        delete(name, team=self.team(), workbench=self.workbench)
        self.set_status(204)
        self.finish()


class JobActHandler(JobReplies):
    @tornado.web.authenticated
    def post(self, name: str, act: str) -> None:
        from workbench.scheduler import api as jobs

        team = self.team()
        if act == "trigger":
            run_id = jobs.trigger(name, triggered_by="lab", team=team, workbench=self.workbench)
            self.set_status(201)
            self.reply({"id": str(run_id)})
            return
        change = {"pause": jobs.pause, "resume": jobs.resume}[act]
        self.reply_job(change(name, team=team, workbench=self.workbench))


class ScheduleHandler(WorkbenchHandler):
    """The next run times of a cron schedule in a time zone, before any job is saved: the
    preview a scheduling form shows as the analyst types."""

    @tornado.web.authenticated
    def get(self) -> None:
        from datetime import datetime

        from workbench.scheduler.cron import next_slots, validate_schedule, zone

        cron = self.get_query_argument("cron", "").strip()
        timezone = self.get_query_argument("timezone", "UTC").strip() or "UTC"
        if not cron:
            raise RequestError("Give a cron schedule (five fields), e.g. '0 6 * * *'.")
        validate_schedule(cron, timezone)
        tz = zone(timezone)
        slots = next_slots(cron, timezone, datetime.now(UTC), NEXT_RUNS)
        self.reply(
            {
                "cron": cron,
                "timezone": timezone,
                "next_runs": [slot.astimezone(tz).isoformat() for slot in slots],
            }
        )


JOB_ROUTES: list[tuple[str, type[WorkbenchHandler]]] = [
    ("/schedule", ScheduleHandler),
    ("/jobs", JobsHandler),
    (r"/jobs/(?P<name>[^/]+)", JobHandler),
    (r"/jobs/(?P<name>[^/]+)/(?P<act>pause|resume|trigger)", JobActHandler),
]
