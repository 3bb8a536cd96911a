"""Errors of the command line itself: options that do not fit together."""

from __future__ import annotations

from workbench.core.errors import WorkbenchError


class UsageError(WorkbenchError):
    """The command line is not valid; see the command's `--help`."""

    exit_code = 2
