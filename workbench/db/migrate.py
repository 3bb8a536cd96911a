"""Schema migrations through Alembic, driven from Python (and so from the CLI).

The migration scripts ship inside the package, so an installed wheel can migrate. On
PostgreSQL an advisory lock serialises concurrent upgrades (two ``init`` at once are safe).
Alembic is imported when a function needs it, not with this module: every command that opens
the database imports this module, and Alembic's import adds about 0.1 s to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, text

from workbench.core.errors import MigrationError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = [
    "MigrationStatus",
    "Revision",
    "current_revision",
    "downgrade",
    "drift",
    "head_revision",
    "history",
    "include_name",
    "migration_status",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = 0x5742_4D49  # "WBMI": one advisory lock id for schema changes


@dataclass(frozen=True)
class Revision:
    revision: str
    down_revision: str | None
    message: str


@dataclass(frozen=True)
class MigrationStatus:
    current: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Compare only Workbench's own tables: user data tables are not the schema's business."""
    if type_ == "table":
        from workbench.db.models import Base

        return name in Base.metadata.tables
    return True


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = _script().get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise MigrationError("No migrations are shipped with this Workbench installation.")
    return head


def history() -> list[Revision]:
    """All revisions, newest first."""
    return [
        Revision(
            s.revision,
            s.down_revision if isinstance(s.down_revision, str) else None,
            (s.doc or "").strip(),
        )
        for s in _script().walk_revisions()
    ]


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migration_status(engine: Engine) -> MigrationStatus:
    return MigrationStatus(current=current_revision(engine), head=head_revision())


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
            conn.commit()
        try:
            yield conn
            conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
                conn.commit()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (default: the newest)."""
    from alembic import command
    from alembic.util.exc import CommandError

    with _locked(engine) as conn:
        try:
            command.upgrade(_config(conn), revision)
        except CommandError as exc:
            raise MigrationError(
                f"Cannot upgrade to {revision!r}: {exc}. See `workbench db history`."
            ) from None


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade the schema to ``revision`` (``base`` removes every Workbench table)."""
    from alembic import command
    from alembic.util.exc import CommandError

    with _locked(engine) as conn:
        try:
            command.downgrade(_config(conn), revision)
        except CommandError as exc:
            raise MigrationError(
                f"Cannot downgrade to {revision!r}: {exc}. See `workbench db history`."
            ) from None


def drift(engine: Engine) -> list[Any]:
    """Differences between the database schema and the models (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from workbench.db.models import Base

    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_name": include_name,
            },
        )
        return list(compare_metadata(ctx, Base.metadata))
