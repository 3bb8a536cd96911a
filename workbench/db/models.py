"""The core schema: accounts, jobs and runs, sources and the audit log.

Every entity has a UUID primary key. Columns that queues and dashboards filter on are
indexed. Changes to these models need a migration (``alembic revision --autogenerate``);
the drift test fails when they disagree.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from workbench.core.roles import Role
from workbench.db import display
from workbench.db.types import JSONDocument, UTCDateTime, utcnow

__all__ = [
    "AuditEntry",
    "Base",
    "CatchUp",
    "Dataset",
    "DatasetShare",
    "Job",
    "Membership",
    "Role",
    "Run",
    "RunResult",
    "RunStatus",
    "Secret",
    "ServiceHeartbeat",
    "ServiceKind",
    "Source",
    "Team",
    "User",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with constraint names that are stable across both databases."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONDocument,
    }


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings with a CHECK: portable, and new values need only a migration.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=20,
        values_callable=lambda e: [m.value for m in e],
    )


def _name_of_no_team(table: str) -> Index:
    # Names are unique per team; among rows of no team (global secrets, the service's own
    # jobs) too, which SQLite's UNIQUE, treating NULLs as distinct, would not ensure.
    no_team = text("team_id IS NULL")
    return Index(
        f"ix_{table}_name_of_no_team",
        "name",
        unique=True,
        sqlite_where=no_team,
        postgresql_where=no_team,
    )


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    # The executor would not run it: no active owner to run as, or a location it may not use.
    REFUSED = "refused"


class ServiceKind(enum.StrEnum):
    SCHEDULER = "scheduler"
    WORKER = "worker"


class CatchUp(enum.StrEnum):
    NONE = "none"
    LATEST = "latest"
    ALL = "all"


class User(Base):
    """A person who logs in: analyst, viewer or admin."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), default=Role.ANALYST)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    db_role: Mapped[str | None] = mapped_column(String(63), unique=True)
    db_password_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Raised by sign-out, a new password, rotate-credentials and disable: sessions signed
    under an older generation are refused (migration 0007)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Team(Base):
    """A group of users that owns data, jobs and dashboards."""

    __tablename__ = "teams"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Membership(Base):
    """A user's membership of a team."""

    __tablename__ = "memberships"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """A notebook registered to run on a schedule or on demand."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("team_id", "name", postgresql_nulls_not_distinct=True),
        _name_of_no_team("jobs"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    notebook: Mapped[str] = mapped_column(String(1024))
    schedule: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    retry_delay_seconds: Mapped[int] = mapped_column(Integer, default=60)
    timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    max_concurrency: Mapped[int] = mapped_column(Integer, default=1)
    catchup: Mapped[CatchUp] = mapped_column(_enum(CatchUp, "catchup"), default=CatchUp.LATEST)
    catchup_limit: Mapped[int] = mapped_column(Integer, default=100)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    last_scheduled_for: Mapped[datetime | None]
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return display.job_repr(self)

    def _repr_html_(self) -> str:
        return display.job_repr_html(self)


class Run(Base):
    """One execution of a notebook; claimed with a lease, fenced by its attempt number."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("job_id", "scheduled_for"),
        Index("ix_runs_status_queued_at", "status", "queued_at"),
        Index("ix_runs_status_lease_expires_at", "status", "lease_expires_at"),
        Index("ix_runs_notebook_finished_at", "notebook", "finished_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )
    notebook: Mapped[str] = mapped_column(String(1024))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[RunStatus] = mapped_column(
        _enum(RunStatus, "run_status"), default=RunStatus.QUEUED
    )
    scheduled_for: Mapped[datetime | None]
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    triggered_by: Mapped[str] = mapped_column(String(200), default="api")
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    not_before: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    kernel_started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String(200))
    timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    progress_cell: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    error_name: Mapped[str | None] = mapped_column(String(200))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_cell: Mapped[int | None] = mapped_column(Integer)
    output_uri: Mapped[str | None] = mapped_column(String(2048))
    run_token_hash: Mapped[str | None] = mapped_column(Text)
    """sha256 (hex) of the token the run's kernel presents to write its results; service-set."""
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    team_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))

    def __repr__(self) -> str:
        return display.run_repr(self)

    def _repr_html_(self) -> str:
        return display.run_repr_html(self)


class RunResult(Base):
    """A typed value a notebook recorded with ``wb.record`` during a run."""

    __tablename__ = "run_results"
    __table_args__ = (UniqueConstraint("run_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[dict[str, Any] | None]
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    content_type: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Source(Base):
    """A configured data source that ingests into a table."""

    __tablename__ = "sources"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    plugin: Mapped[str] = mapped_column(String(100))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    target_table: Mapped[str | None] = mapped_column(String(200))
    team_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_ingested_at: Mapped[datetime | None]


class Dataset(Base):
    """A table analysts write with ``wb.write``: who owns it, which team, when last written."""

    __tablename__ = "datasets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("teams.id", ondelete="SET NULL"), index=True
    )
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_write_at: Mapped[datetime | None]
    last_write_mode: Mapped[str | None] = mapped_column(String(20))
    last_write_rows: Mapped[int | None] = mapped_column(Integer)
    columns: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Per-column type details the database cannot hold (categories, time zones, decimals)."""


class DatasetShare(Base):
    """A team that may read another team's dataset (``wb.share(table, team)``)."""

    __tablename__ = "dataset_shares"

    dataset_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Secret(Base):
    """A named secret for notebooks (``secret:NAME``), encrypted with the workbench key."""

    __tablename__ = "secrets"
    __table_args__ = (
        UniqueConstraint("team_id", "name", postgresql_nulls_not_distinct=True),
        _name_of_no_team("secrets"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    value_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    team_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEntry(Base):
    """Who did what, when: append-only."""

    __tablename__ = "audit_log"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(String(100), index=True)
    target: Mapped[str | None] = mapped_column(String(500))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ServiceHeartbeat(Base):
    """A running scheduler or worker process: one row per process, refreshed while it lives.

    Health checks read ``heartbeat_at`` to find a service that stopped beating; a process that
    stops cleanly deletes its row.
    """

    __tablename__ = "service_heartbeats"
    __table_args__ = (Index("ix_service_heartbeats_kind_heartbeat_at", "kind", "heartbeat_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[ServiceKind] = mapped_column(_enum(ServiceKind, "service_kind"))
    name: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
