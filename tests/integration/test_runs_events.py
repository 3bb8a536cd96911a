"""Run lifecycle events: ``run_queued`` for every queued run, ``job_name`` for runs of jobs.

A recording plugin is registered on a real :class:`Plugins` set; the runs are queued and
executed on both databases, and once through the command line with an installed plugin.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.cli import run_cli
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.db.models import Job
from workbench.plugins.events import RunEvent
from workbench.plugins.hookspecs import hookimpl
from workbench.plugins.manager import Plugins
from workbench.runs import records
from workbench.runs.api import queue_run
from workbench.runs.execute import execute_run
from workbench.scheduler import api as jobs
from workbench.scheduler.reaper import reap_expired
from workbench.scheduler.tick import schedule_due

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TRIVIAL = str(NOTEBOOKS / "trivial.ipynb")  # one parameter, x: int = 1
FAILING = str(NOTEBOOKS / "fails_in_cell_2.ipynb")
T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


class Recorder:
    """Keeps every lifecycle event it hears, as (hook, event)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, RunEvent]] = []

    @hookimpl
    def run_queued(self, event: RunEvent) -> None:
        self.events.append(("run_queued", event))

    @hookimpl
    def run_started(self, event: RunEvent) -> None:
        self.events.append(("run_started", event))

    @hookimpl
    def run_finished(self, event: RunEvent) -> None:
        self.events.append(("run_finished", event))

    @hookimpl
    def run_failed(self, event: RunEvent) -> None:
        self.events.append(("run_failed", event))

    def queued(self) -> list[RunEvent]:
        return [e for hook, e in self.events if hook == "run_queued"]


@pytest.fixture
def recorded(db_url: str) -> Iterator[tuple[Workbench, Recorder]]:
    settings = load_settings()
    plugins = Plugins(settings)
    recorder = Recorder()
    plugins._register(recorder, "recorder", "1", builtin=False)
    wb = Workbench(settings, db_url, plugins=plugins)
    yield wb, recorder
    wb.close()


def test_an_api_run_is_announced_when_queued(
    pg_owner: str | None, recorded: tuple[Workbench, Recorder]
) -> None:
    wb, recorder = recorded
    run_id = queue_run(TRIVIAL, {"x": 2}, owner=pg_owner, workbench=wb)
    (event,) = recorder.queued()
    assert event.run_id == run_id
    assert event.status == "queued"
    assert event.triggered_by == "api"
    assert event.parameters == {"x": 2}
    assert event.job_name is None
    assert event.notebook == TRIVIAL


def test_a_triggered_job_and_its_finished_run_carry_the_job_name(
    pg_owner: str | None,
    recorded: tuple[Workbench, Recorder],
) -> None:
    wb, recorder = recorded
    jobs.register("nightly", TRIVIAL, parameters={"x": 3}, owner=pg_owner, workbench=wb)
    run_id = jobs.trigger("nightly", workbench=wb)
    (queued,) = recorder.queued()
    assert (queued.run_id, queued.job_name, queued.triggered_by) == (run_id, "nightly", "manual")
    assert queued.parameters == {"x": 3}

    assert execute_run(run_id, workbench=wb).ok
    hooks = [(hook, e.status, e.job_name) for hook, e in recorder.events]
    assert hooks == [
        ("run_queued", "queued", "nightly"),
        ("run_started", "running", "nightly"),
        ("run_finished", "succeeded", "nightly"),
    ]


def test_each_new_schedule_slot_is_announced_once(
    pg_owner: str | None, recorded: tuple[Workbench, Recorder]
) -> None:
    wb, recorder = recorded
    jobs.register(
        "hourly", TRIVIAL, schedule="0 * * * *", catchup="all", now=T0, owner=pg_owner, workbench=wb
    )
    result = schedule_due(wb, T0 + timedelta(hours=2, minutes=1))
    assert len(result.created) == 2
    queued = recorder.queued()
    assert [e.run_id for e in queued] == result.created
    assert {(e.job_name, e.triggered_by) for e in queued} == {("hourly", "schedule")}
    assert schedule_due(wb, T0 + timedelta(hours=2, minutes=2)).created == []
    assert len(recorder.queued()) == 2


def test_a_rolled_back_queue_is_not_announced(
    pg_owner: str | None, recorded: tuple[Workbench, Recorder]
) -> None:
    wb, recorder = recorded
    jobs.register("undone", TRIVIAL, owner=pg_owner, workbench=wb)
    with (
        wb.session() as session,
        pytest.raises(RuntimeError, match="changed my mind"),
        session.begin(),
    ):
        job = session.scalar(select(Job).where(Job.name == "undone"))
        assert job is not None
        records.queue_job_run(wb, session, job, triggered_by="manual")
        raise RuntimeError("changed my mind")
    assert recorder.queued() == []
    assert records.list_runs(wb) == []


def test_a_retry_is_announced_when_requeued(
    pg_owner: str | None, recorded: tuple[Workbench, Recorder]
) -> None:
    wb, recorder = recorded
    jobs.register("flaky", FAILING, retries=2, retry_delay=0, owner=pg_owner, workbench=wb)
    run_id = jobs.trigger("flaky", workbench=wb)

    # A failed attempt is put back in the queue by its runner...
    assert execute_run(run_id, workbench=wb).status.value == "queued"
    retried = recorder.queued()[-1]
    assert (retried.run_id, retried.attempt, retried.job_name) == (run_id, 1, "flaky")
    assert retried.error_name == "ValueError"

    # ... and an attempt whose worker vanished by the reaper.
    attempt = records.claim_run(wb, run_id, worker="host:1:main", lease_seconds=-1)
    assert attempt == 2
    assert reap_expired(wb).requeued == [run_id]
    reaped = recorder.queued()[-1]
    assert (reaped.run_id, reaped.attempt, reaped.error_name) == (run_id, 2, "WorkerLost")
    assert len(recorder.queued()) == 3  # the trigger and two retries
    assert not any(hook == "run_failed" for hook, _ in recorder.events)


def test_a_run_the_reaper_fails_is_announced_as_failed(
    pg_owner: str | None,
    recorded: tuple[Workbench, Recorder],
) -> None:
    wb, recorder = recorded
    jobs.register("lost", TRIVIAL, retries=0, owner=pg_owner, workbench=wb)
    run_id = jobs.trigger("lost", workbench=wb)
    assert records.claim_run(wb, run_id, worker="host:1:main", lease_seconds=-1) == 1
    assert reap_expired(wb).failed == [run_id]
    (failed,) = [e for hook, e in recorder.events if hook == "run_failed"]
    assert (failed.run_id, failed.status, failed.job_name) == (run_id, "failed", "lost")
    assert failed.error_name == "WorkerLost"


RECORDING_PLUGIN = """\
import dataclasses, json, os
from workbench.plugins.hookspecs import hookimpl

@hookimpl
def run_queued(event):
    with open(os.environ["RECORDED_EVENTS"], "a", encoding="utf-8") as f:
        f.write(json.dumps(dataclasses.asdict(event), default=str) + "\\n")
"""


def test_the_command_line_announces_its_runs(
    tmp_path: Path, settings: object, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    info = site / "wb_recorder-0.0.1.dist-info"
    info.mkdir(parents=True)
    (site / "wb_recorder.py").write_text(RECORDING_PLUGIN, encoding="utf-8")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wb-recorder\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[workbench]\nrecorder = wb_recorder\n")
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv("WORKBENCH_PLUGINS", "recorder")
    env = {
        "PYTHONPATH": str(site),
        "RECORDED_EVENTS": str(events),
        "WORKBENCH_DATABASE_URL": sqlite_url,
    }
    ran = run_cli("run", TRIVIAL, "-p", "x", "5", env=env)
    assert ran.code == 0, ran.output
    assert run_cli("jobs", "add", "adhoc", TRIVIAL, "-p", "x=6", env=env).code == 0
    triggered = run_cli("jobs", "trigger", "adhoc", env=env)
    assert triggered.code == 0, triggered.output

    lines = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    assert [(e["triggered_by"], e["job_name"], e["parameters"]) for e in lines] == [
        ("cli", None, {"x": 5}),
        ("manual", "adhoc", {"x": 6}),
    ]
    assert lines[1]["run_id"] in triggered.stdout
