"""What a failure to reach or open the database means, in the user's terms.

The command line (and any other boundary) turns the driver's exception into one of the
errors of :mod:`workbench.db.errors`: a closed port, a database that does not exist, a
read-only file, a home before `workbench init` or a database without the schema. Anything
else is not explained here and stays the exception it was (a bug to report).
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from workbench.core.config import Settings, mask_url
from workbench.core.errors import WorkbenchError
from workbench.db.errors import (
    DatabaseMissingError,
    DatabaseUnavailableError,
    ReadOnlyDatabaseError,
    SchemaMissingError,
)

__all__ = ["driver_message", "explain", "explain_reason", "require_existing", "sqlite_file"]

_MISSING_TABLE = re.compile(
    r'no such table: (?:main\.)?"?(\w+)"?|relation "(?:\w+\.)?(\w+)" does not exist'
)
#: The schema of Workbench's checked functions (team mode), or one of them, is missing.
_MISSING_FUNCTIONS = re.compile(r'schema "wb_private" does not exist|function wb_private\.\w+')


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite ``url`` (``None`` for another database or an in-memory one)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = str(parsed.database or "")
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if parsed.query.get("uri") == "true":  # sqlite:///file:PATH?mode=ro&uri=true
        database = database.removeprefix("file:")
        if not database or database.startswith(":memory:"):
            return None
    return Path(database).expanduser()


def require_existing(settings: Settings) -> None:
    """Refuse to go on when the embedded database has not been created yet: only
    `workbench init` creates one (opening a missing SQLite file would create it empty)."""
    path = sqlite_file(settings.effective_database_url())
    if path is not None and not path.exists():
        raise DatabaseMissingError(
            f"There is no Workbench database at {path} yet: run `workbench init` first "
            "(or set WORKBENCH_HOME or WORKBENCH_DATABASE_URL to an initialised one)."
        )


def _workbench_tables() -> frozenset[str]:
    from workbench.db.models import Base

    return frozenset(Base.metadata.tables)


def driver_message(exc: BaseException, default: str = "") -> str:
    """The first line of the driver's own message (not SQLAlchemy's statement and background
    link), or ``default`` when it says nothing."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else default


def explain(exc: SQLAlchemyError, url: str) -> WorkbenchError | None:
    """The error a user should see for ``exc``, raised on the database at ``url``; ``None``
    when it is not a failure to reach, open or find the database (the caller re-raises)."""
    if not isinstance(exc, DBAPIError):
        return None
    reason = driver_message(exc, "unknown error").rstrip(".")
    explained = explain_reason(reason, url)
    if explained is not None:
        return explained
    if exc.statement is None or exc.connection_invalidated:  # failed while connecting
        path = sqlite_file(url)
        if path is not None:
            return DatabaseUnavailableError(
                f"Cannot open the SQLite database {path} ({reason}): check that its folder "
                "exists and that you may read and write it, or set WORKBENCH_HOME."
            )
        return DatabaseUnavailableError(
            f"Cannot connect to the database {mask_url(url)} ({reason}): check that the "
            "server is running, that the database exists and WORKBENCH_DATABASE_URL."
        )
    return None


def explain_reason(reason: str, url: str | None = None) -> WorkbenchError | None:
    """The database's own words ``reason`` (any driver's: SQLAlchemy, ADBC) in the user's
    terms when they say the database is read-only or lacks Workbench's schema, else ``None``."""
    where = "The database" + (f" {sqlite_file(url) or mask_url(url)}" if url else "")
    if "readonly database" in reason or "read-only" in reason:
        return ReadOnlyDatabaseError(
            f"{where} refuses writes ({reason}): make it writable by this user, or set "
            "WORKBENCH_HOME to a folder you can write."
        )
    missing = _MISSING_TABLE.search(reason)
    table = (missing.group(1) or missing.group(2)) if missing else None
    if table in _workbench_tables() or _MISSING_FUNCTIONS.search(reason):
        what = f"table {table!r}" if table else "its functions"
        return SchemaMissingError(
            f"{where} has no Workbench schema ({what} missing): run `workbench init` for a "
            "new database, or `workbench db upgrade` for an old one."
        )
    return None
