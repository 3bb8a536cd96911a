"""Errors of the database layer: names, row-level security, per-user logins."""

from __future__ import annotations

from workbench.core.errors import WorkbenchError


class NoDatabaseIdentityError(WorkbenchError):
    """This user has no database login; run `workbench users rotate-credentials USER`."""


class MultiUserError(WorkbenchError):
    """This needs team mode: set WORKBENCH_DATABASE_URL to a PostgreSQL database."""


class TeamTableError(WorkbenchError):
    """The team table could not be created; check the name, the column types and your team."""


class UnknownTableError(WorkbenchError):
    """No such table; check the name (see `wb.sql` or the dataset catalog)."""


class ShareError(WorkbenchError):
    """The table could not be shared; only members of its team (or admins) share it."""


class IdentifierError(WorkbenchError):
    """A table or column name is not allowed; use letters, digits and underscores."""


class DatabaseUnavailableError(WorkbenchError):
    """The database cannot be reached or opened; check WORKBENCH_DATABASE_URL and the server."""


class DatabaseMissingError(WorkbenchError):
    """There is no Workbench database here yet; run `workbench init` first."""


class SchemaMissingError(WorkbenchError):
    """The database has no Workbench schema (or an old one); run `workbench init` or
    `workbench db upgrade`."""


class ReadOnlyDatabaseError(WorkbenchError):
    """The database refuses writes; make it writable or point WORKBENCH_HOME elsewhere."""
