"""Errors of the command line itself: options that do not fit, files it will not replace."""

from __future__ import annotations

from workbench.core.errors import WorkbenchError


class UsageError(WorkbenchError):
    """The command line is not valid; see the command's `--help`."""

    exit_code = 2


class SecretFilesError(WorkbenchError):
    """A deployment's secret files could not be written where they were asked for."""


class SecretFilesExistError(SecretFilesError):
    """Secret files exist already; pass --force to replace them with new values."""
