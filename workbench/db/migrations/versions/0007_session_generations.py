"""session generations: signing out, a new password or disabling ends every session at once

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Each user has a session generation, written into every session cookie the dashboards server
signs; a cookie of an older generation is refused. Signing out, changing the password,
``rotate-credentials`` and ``disable`` raise it, so every session of that user ends on every
server at once (the servers read it with the account, not from the cookie).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_generation")
