"""Errors of accounts and teams."""

from __future__ import annotations

from workbench.core.errors import WorkbenchError


class TeamError(WorkbenchError):
    """The team could not be created or changed."""


class AccountError(WorkbenchError):
    """The account could not be created or changed."""


class AuthenticationError(WorkbenchError):
    """Wrong user name or password, or the account is disabled or temporarily locked."""
