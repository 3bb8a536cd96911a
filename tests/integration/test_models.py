"""The core schema on both databases: UUID keys, aware timestamps, constraints."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from workbench.app import Workbench
from workbench.db.models import Job, Membership, Run, RunStatus, Team, User


def test_uuid_keys_and_aware_timestamps_round_trip(workbench: Workbench) -> None:
    when = datetime(2013, 3, 10, 2, 30, tzinfo=timezone(timedelta(hours=-5)))
    with workbench.session() as s, s.begin():
        job = Job(name="kpis", notebook="notebooks/flights_kpis.ipynb", next_run_at=when)
        s.add(job)
    with workbench.session() as s:
        loaded = s.scalars(select(Job)).one()
    assert isinstance(loaded.id, uuid.UUID)
    assert loaded.next_run_at == when
    assert loaded.next_run_at is not None and loaded.next_run_at.tzinfo is not None
    assert loaded.created_at.tzinfo is not None


def test_one_run_per_job_and_slot(workbench: Workbench) -> None:
    slot = datetime(2013, 1, 1, 6, tzinfo=UTC)
    with workbench.session() as s, s.begin():
        job = Job(name="daily", notebook="n.ipynb")
        s.add(job)
        s.flush()
        s.add(Run(job_id=job.id, notebook="n.ipynb", scheduled_for=slot))
        job_id = job.id
    with pytest.raises(IntegrityError), workbench.session() as s, s.begin():
        s.add(Run(job_id=job_id, notebook="n.ipynb", scheduled_for=slot))
    with workbench.session() as s:
        runs = s.scalars(select(Run)).all()
    assert len(runs) == 1
    assert runs[0].status is RunStatus.QUEUED


def test_foreign_keys_cascade(workbench: Workbench) -> None:
    with workbench.session() as s, s.begin():
        user = User(username="ana", password_hash="x")
        team = Team(name="ops")
        s.add_all([user, team])
        s.flush()
        s.add(Membership(user_id=user.id, team_id=team.id))
    with workbench.session() as s, s.begin():
        s.delete(s.scalars(select(Team)).one())
    with workbench.session() as s:
        assert s.scalars(select(Membership)).all() == []


def test_naive_datetimes_are_refused(workbench: Workbench) -> None:
    with pytest.raises(Exception, match="naive"), workbench.session() as s, s.begin():
        s.add(Job(name="bad", notebook="n.ipynb", next_run_at=datetime(2013, 1, 1)))


def test_status_values_are_checked(workbench: Workbench) -> None:
    from sqlalchemy import text

    with pytest.raises(IntegrityError), workbench.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, notebook, parameters, status, attempt, max_attempts,"
                " triggered_by, queued_at, progress_cell, progress_total)"
                " VALUES (:id, 'n', '{}', 'exploded', 0, 1, 'api', :t, 0, 0)"
            ),
            {
                "id": uuid.uuid4().hex
                if workbench.engine.dialect.name == "sqlite"
                else uuid.uuid4(),
                "t": datetime.now(UTC),
            },
        )
