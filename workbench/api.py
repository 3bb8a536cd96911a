"""The public functions of the data API and ``wb.init()``, acting on the default workbench.

Each is the data API's function with the default :class:`~workbench.app.Workbench` bound
(:func:`~workbench.app.on_default`); services and tests call the same functions as methods of
their own workbench (``wb.connect()``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from workbench.app import Workbench, on_default, public_api
from workbench.core.config import Settings, load_settings, mask_url
from workbench.core.errors import DatabaseError
from workbench.core.production import ensure_production_safe
from workbench.data import api as data
from workbench.db.models import Role, User

__all__ = ["InitResult", "describe", "init", "read_table", "sql", "tables", "write"]

sql = on_default(data.sql)
read_table = on_default(data.read_table)
write = on_default(data.write)
tables = on_default(data.tables)
describe = on_default(data.describe)


@dataclass(frozen=True)
class InitResult:
    home: Path
    database: str
    revision: str
    secret_key_generated: bool
    admin_username: str
    admin_created: bool
    admin_password: str | None
    """The generated one-time admin password; ``None`` if supplied or the admin existed."""


@public_api
def init(
    settings: Settings | None = None,
    *,
    admin_username: str = "admin",
    admin_password: str | None = None,
) -> InitResult:
    """Create the home, a secret key, the schema at head and the first admin. Idempotent."""
    from workbench.accounts.users import create_user
    from workbench.core.home import ensure_home, ensure_secret_key

    settings = settings or load_settings()
    ensure_production_safe(settings, allow_missing_key=True)
    layout = ensure_home(settings)
    generated = ensure_secret_key(settings)
    ensure_production_safe(settings)
    with Workbench(settings) as wb:
        wb.upgrade()
        status = wb.migration_status()
        with wb.session(writing=True) as session, session.begin():
            admin = session.scalar(select(User).where(User.role == Role.ADMIN).limit(1))
            created, password = False, None
            if admin is None:
                # In team mode the admin gets a database login at once (settings= does it).
                account = create_user(
                    session,
                    admin_username,
                    role=Role.ADMIN,
                    password=admin_password,
                    settings=settings,
                )
                created, password = True, account.password
                admin_username = account.user.username
            else:
                admin_username = admin.username
        if status.current is None:  # pragma: no cover - upgrade() raised already
            raise DatabaseError("The database schema could not be created.")
        return InitResult(
            home=layout.root,
            database=mask_url(wb.database_url),
            revision=status.current,
            secret_key_generated=generated,
            admin_username=admin_username,
            admin_created=created,
            admin_password=password,
        )
