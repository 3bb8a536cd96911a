"""Errors of sources and ingest."""

from __future__ import annotations

from workbench.core.errors import WorkbenchError


class SourceError(WorkbenchError):
    """A source could not read its input; the message names the file, row or URL at fault."""


class SourceOptionError(SourceError):
    """A source option is missing, unknown or invalid; see `workbench sources`."""

    exit_code = 2


class UnknownSourceError(SourceOptionError):
    """No source has this name; `workbench sources` lists the installed ones."""
