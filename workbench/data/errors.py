"""Errors of the data API; each message names the table and what to do."""

from __future__ import annotations

from workbench.core.errors import WorkbenchError


class DataError(WorkbenchError):
    """The data could not be written or read; the message names the table and column."""


class TableNotFoundError(DataError):
    """The table does not exist; check the name with wb.tables()."""


class TeamChoiceError(DataError):
    """Say which team the new table belongs to: pass team='name'."""
