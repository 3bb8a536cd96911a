"""``secret:NAME`` option values, resolved from the secret store of the ingesting workbench.

``wb.ingest`` sets the workbench for the duration of a read, so a source resolves references
against the same store the ingest writes to; outside an ingest the default workbench is used.
Resolved values are handed to the source only: never logged, echoed or put in an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from workbench.runs.params import SECRET_PREFIX, is_secret_reference
from workbench.sources.errors import SourceOptionError

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = ["is_reference", "resolve_reference", "using_workbench"]

_current: ContextVar[Workbench | None] = ContextVar("workbench_ingesting", default=None)


@contextmanager
def using_workbench(wb: Workbench) -> Iterator[None]:
    """Resolve secret references against ``wb`` inside this block."""
    token = _current.set(wb)
    try:
        yield
    finally:
        _current.reset(token)


def is_reference(value: str) -> bool:
    """True for a ``secret:NAME`` option value (the same references run parameters take)."""
    return is_secret_reference(value)


def resolve_reference(value: str, option: str) -> str:
    """The secret named by ``value`` (``secret:NAME``); ``option`` names it in errors."""
    if not is_reference(value):
        raise SourceOptionError(
            f"Option {option!r} must be a secret reference `secret:NAME`, so the value never "
            "appears in commands, notebooks or logs; store it with `workbench secrets set NAME`."
        )
    name = value[len(SECRET_PREFIX) :].strip()
    if not name:
        raise SourceOptionError(
            f"Option {option!r}: `secret:` needs a name, e.g. secret:API_TOKEN."
        )
    from workbench.runs.secrets import read_secret

    wb = _current.get()
    if wb is None:
        from workbench.app import default

        wb = default()
    return read_secret(wb, name)
