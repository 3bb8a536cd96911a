"""Scheduler ticks on the real databases: exactly one run per slot, catch-up policies."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from workbench.app import Workbench
from workbench.core.config import Settings
from workbench.db.models import Job, Run, RunStatus
from workbench.runs.api import notebook_params
from workbench.scheduler import api as jobs
from workbench.scheduler.errors import JobError, JobNotFoundError
from workbench.scheduler.tick import schedule_due

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
NB = str(ROOT / "tests" / "notebooks" / "trivial.ipynb")  # one parameter, x: int = 1
KPIS = str(ROOT / "notebooks" / "flights_kpis.ipynb")


def _runs(wb: Workbench, name: str) -> list[Run]:
    with wb.session() as s:
        job_id = s.scalar(select(Job.id).where(Job.name == name))
        return list(s.scalars(select(Run).where(Run.job_id == job_id).order_by(Run.scheduled_for)))


def test_dst_job_ticked_every_15_minutes(pg_owner: str | None, workbench: Workbench) -> None:
    jobs.register(
        "berlin",
        NB,
        schedule="30 2 * * *",
        timezone="Europe/Berlin",
        now=datetime(2026, 3, 27, 12, tzinfo=UTC),
        owner=pg_owner,
        workbench=workbench,
    )
    now = datetime(2026, 3, 27, 12, tzinfo=UTC)
    while now < datetime(2026, 3, 31, 12, tzinfo=UTC):
        now += timedelta(minutes=15)
        schedule_due(workbench, now)
    slots = [r.scheduled_for for r in _runs(workbench, "berlin")]
    assert slots == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 03:00 CEST: 02:30 did not exist
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST
        datetime(2026, 3, 31, 0, 30, tzinfo=UTC),
    ]


def test_job_settings_travel_with_the_run(pg_owner: str | None, workbench: Workbench) -> None:
    jobs.register(
        "kpis",
        KPIS,
        schedule="0 * * * *",
        parameters={"carrier": "UA"},
        retries=2,
        timeout=600,
        now=T0,
        owner=pg_owner,
        workbench=workbench,
    )
    result = schedule_due(workbench, T0 + timedelta(hours=1))
    assert len(result.created) == 1
    (run,) = _runs(workbench, "kpis")
    assert run.status is RunStatus.QUEUED
    assert run.parameters == {"carrier": "UA"}
    assert run.max_attempts == 3
    assert run.timeout_seconds == 600
    assert run.triggered_by == "schedule"
    assert jobs.get("kpis", workbench=workbench).next_run_at == T0 + timedelta(hours=2)


@pytest.mark.parametrize(
    ("policy", "limit", "expected_hours"),
    [("none", 100, []), ("latest", 100, [5]), ("all", 100, [1, 2, 3, 4, 5]), ("all", 3, [3, 4, 5])],
)
def test_catch_up_after_downtime(
    pg_owner: str | None, workbench: Workbench, policy: str, limit: int, expected_hours: list[int]
) -> None:
    jobs.register(
        "hourly",
        NB,
        schedule="0 * * * *",
        catchup=policy,
        catchup_limit=limit,
        now=T0,
        owner=pg_owner,
        workbench=workbench,
    )
    # The scheduler was down for five slots and comes back 30 minutes after the last one.
    back = T0 + timedelta(hours=5, minutes=30)
    result = schedule_due(workbench, back)
    slots = [r.scheduled_for for r in _runs(workbench, "hourly")]
    assert slots == [T0 + timedelta(hours=h) for h in expected_hours]
    assert result.skipped == 5 - len(expected_hours)
    # Then it runs on time again, whatever the policy.
    schedule_due(workbench, T0 + timedelta(hours=6, seconds=5))
    assert _runs(workbench, "hourly")[-1].scheduled_for == T0 + timedelta(hours=6)


def test_catchup_none_still_runs_a_slot_that_is_on_time(
    pg_owner: str | None, workbench: Workbench
) -> None:
    jobs.register(
        "j", NB, schedule="0 * * * *", catchup="none", now=T0, owner=pg_owner, workbench=workbench
    )
    schedule_due(workbench, T0 + timedelta(hours=1, seconds=20))
    assert [r.scheduled_for for r in _runs(workbench, "j")] == [T0 + timedelta(hours=1)]


def test_paused_jobs_are_not_scheduled_and_resume_skips_the_pause(
    pg_owner: str | None, workbench: Workbench
) -> None:
    jobs.register(
        "p", NB, schedule="0 * * * *", catchup="all", now=T0, owner=pg_owner, workbench=workbench
    )
    jobs.pause("p", workbench=workbench)
    schedule_due(workbench, T0 + timedelta(hours=3))
    assert _runs(workbench, "p") == []
    jobs.resume("p", now=T0 + timedelta(hours=3, minutes=10), workbench=workbench)
    schedule_due(workbench, T0 + timedelta(hours=4))
    assert [r.scheduled_for for r in _runs(workbench, "p")] == [T0 + timedelta(hours=4)]


def test_trigger_queues_an_unscheduled_run(pg_owner: str | None, workbench: Workbench) -> None:
    jobs.register("t", NB, parameters={"x": 1}, owner=pg_owner, workbench=workbench)
    first = jobs.trigger("t", workbench=workbench)
    second = jobs.trigger("t", workbench=workbench)
    runs = _runs(workbench, "t")
    assert {r.id for r in runs} == {first, second}
    assert all(r.scheduled_for is None and r.triggered_by == "manual" for r in runs)


def test_unknown_job_and_bad_definitions(pg_owner: str | None, workbench: Workbench) -> None:
    with pytest.raises(JobNotFoundError, match="jobs list"):
        jobs.trigger("nope", workbench=workbench)
    with pytest.raises(JobError, match="catchup must be one of"):
        jobs.register(
            "x", NB, schedule="0 * * * *", catchup="sometimes", owner=pg_owner, workbench=workbench
        )
    with pytest.raises(JobError, match="catchup_limit"):
        jobs.register(
            "x", NB, schedule="0 * * * *", catchup_limit=0, owner=pg_owner, workbench=workbench
        )
    with pytest.raises(JobError, match="max_concurrency"):
        jobs.register("x", NB, max_concurrency=0, owner=pg_owner, workbench=workbench)
    assert jobs.list_jobs(workbench=workbench) == []


def test_parameters_are_validated_at_registration(
    pg_owner: str | None, workbench: Workbench
) -> None:
    from workbench.runs.errors import NotebookError, ParameterError

    with pytest.raises(ParameterError, match="Parameter 'x' expects int, got a value of type str"):
        jobs.register("typed", NB, parameters={"x": "one"}, owner=pg_owner, workbench=workbench)
    with pytest.raises(ParameterError, match="Unknown parameter 'y'; this notebook declares: x"):
        jobs.register("typed", NB, parameters={"y": 1}, owner=pg_owner, workbench=workbench)
    with pytest.raises(NotebookError, match="does not exist"):
        jobs.register("typed", "missing.ipynb", owner=pg_owner, workbench=workbench)
    assert jobs.list_jobs(workbench=workbench) == []
    job = jobs.register(
        "typed", KPIS, parameters={"start": date(2013, 2, 1)}, owner=pg_owner, workbench=workbench
    )
    assert job.parameters == {"start": "2013-02-01"}  # typed, stored as JSON
    assert job.notebook == KPIS
    typed = notebook_params(KPIS).parse_text({"on_time_minutes": "5"})  # as `jobs add` does
    cli = jobs.register("typed", KPIS, parameters=typed, owner=pg_owner, workbench=workbench)
    assert cli.parameters == {"on_time_minutes": 5}


def test_two_schedulers_over_1000_ticks_create_one_run_per_slot(
    pg_owner: str | None, settings: Settings, pg_url: str
) -> None:
    """Two schedulers with their own pools tick the same instants concurrently."""
    setup = Workbench(settings, pg_url)
    for i in range(3):
        jobs.register(
            f"minutely-{i}",
            NB,
            schedule="* * * * *",
            catchup="all",
            now=T0,
            owner=pg_owner,
            workbench=setup,
        )
    ticks = [T0 + timedelta(seconds=30 * (i + 1)) for i in range(1000)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    created: list[int] = [0, 0]

    def scheduler(index: int) -> None:
        wb = Workbench(settings, pg_url)
        try:
            for now in ticks:
                barrier.wait(timeout=30)
                created[index] += len(schedule_due(wb, now).created)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
            barrier.abort()
        finally:
            wb.close()

    threads = [threading.Thread(target=scheduler, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    expected_slots = 500  # 1000 ticks of 30 s = 500 minutes
    with setup.session() as s:
        total = s.scalar(select(func.count()).select_from(Run))
        per_job = s.execute(
            select(Run.job_id, func.count(), func.count(func.distinct(Run.scheduled_for))).group_by(
                Run.job_id
            )
        ).all()
    setup.close()
    assert total == 3 * expected_slots
    assert sum(created) == total
    assert sorted((n, d) for _, n, d in per_job) == [(expected_slots, expected_slots)] * 3
    assert all(c > 0 for c in created), "both schedulers should have done part of the work"


def test_jobs_namespace_on_the_default_workbench(
    monkeypatch: pytest.MonkeyPatch, db_url: str, pg_owner: str | None
) -> None:
    import workbench as wb

    monkeypatch.setenv("WORKBENCH_DATABASE_URL", db_url)
    wb.close()
    try:
        wb.jobs.register(
            "daily", KPIS, schedule="0 6 * * *", timezone="America/New_York",
            parameters={"carrier": "UA"}, retries=2, catchup="none", owner=pg_owner,
        )  # fmt: skip
        assert [j.name for j in wb.jobs.list_jobs()] == ["daily"]
        assert wb.jobs.get("daily").catchup.value == "none"
        run_id = wb.jobs.trigger("daily")
        wb.jobs.pause("daily")
        assert wb.jobs.get("daily").paused
        wb.jobs.delete("daily")
        assert wb.jobs.list_jobs() == []
        assert run_id is not None
    finally:
        wb.close()
