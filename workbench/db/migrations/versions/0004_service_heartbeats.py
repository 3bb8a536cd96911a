"""service heartbeats: schedulers and workers report that they are alive

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

One row per running scheduler or worker process. On PostgreSQL the table is forced under
row-level security: the service (owner role) reads and writes it, admins may read it, analysts
and viewers see nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from workbench.db.types import JSONDocument, UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "service_heartbeats"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "scheduler",
                "worker",
                name="service_kind",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("details", JSONDocument, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_heartbeats")),
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_service_heartbeats_kind_heartbeat_at"),
            ["kind", "heartbeat_at"],
            unique=False,
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY wb_service ON {TABLE} TO CURRENT_USER USING (true) WITH CHECK (true)"
        )
        op.execute(
            f"CREATE POLICY wb_admin_read ON {TABLE} FOR SELECT "
            "USING ((SELECT wb_private.is_admin()))"
        )
        op.execute(f"REVOKE ALL ON {TABLE} FROM PUBLIC")
        op.execute(f"GRANT SELECT ON {TABLE} TO workbench_admin")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"REVOKE ALL ON {TABLE} FROM workbench_admin")
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_heartbeats_kind_heartbeat_at"))
    op.drop_table(TABLE)  # its policies go with it
