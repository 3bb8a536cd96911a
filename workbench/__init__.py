"""Workbench: one governed database, one plugin system and one task system on Jupyter.

``import workbench as wb`` is cheap: submodules load on first use of a name. Every function
reached through this facade raises its WorkbenchErrors from itself, without the frames of
the internals below it (:mod:`workbench.core.boundary`).
"""

from __future__ import annotations

from importlib import import_module
from types import FunctionType
from typing import TYPE_CHECKING, Any

from workbench.core.version import __version__

if TYPE_CHECKING:
    from workbench.accounts.api import *  # noqa: F403 (its __all__: wb.add_user, ...)
    from workbench.accounts.errors import AuthenticationError
    from workbench.api import InitResult, describe, init, read_table, sql, tables, write
    from workbench.app import Workbench, close, connect, default
    from workbench.core.errors import WorkbenchError
    from workbench.data.errors import DataError, TableNotFoundError
    from workbench.db.errors import IdentifierError
    from workbench.plugins.hookspecs import hookimpl
    from workbench.runs.api import (
        Run,
        Worker,
        cancel,
        latest_result,
        notebook_params,
        queue_run,
        record,
        results,
        run,
    )
    from workbench.scheduler import api as jobs
    from workbench.sources.ingest import ingest
    from workbench.sources.search import search_documents

__all__ = [
    "AuthenticationError",
    "DataError",
    "IdentifierError",
    "InitResult",
    "Run",
    "TableNotFoundError",
    "Workbench",
    "WorkbenchError",
    "Worker",
    "__version__",
    "add_member",
    "add_team",
    "add_user",
    "cancel",
    "close",
    "connect",
    "default",
    "describe",
    "disable_user",
    "hookimpl",
    "ingest",
    "init",
    "jobs",
    "latest_result",
    "list_teams",
    "list_users",
    "load_ipython_extension",
    "login",
    "notebook_params",
    "queue_run",
    "read_table",
    "record",
    "remove_member",
    "results",
    "rotate_credentials",
    "run",
    "search_documents",
    "set_password",
    "share",
    "sql",
    "tables",
    "write",
]

_LAZY = {
    "InitResult": "workbench.api",
    "Workbench": "workbench.app",
    "close": "workbench.app",
    "connect": "workbench.app",
    "default": "workbench.app",
    "init": "workbench.api",
    "sql": "workbench.api",
    "read_table": "workbench.api",
    "write": "workbench.api",
    "tables": "workbench.api",
    "describe": "workbench.api",
    "DataError": "workbench.data.errors",
    "TableNotFoundError": "workbench.data.errors",
    "IdentifierError": "workbench.db.errors",
    "WorkbenchError": "workbench.core.errors",
    "hookimpl": "workbench.plugins.hookspecs",
    "AuthenticationError": "workbench.accounts.errors",
    "ingest": "workbench.sources.ingest",
    "search_documents": "workbench.sources.search",
    "Run": "workbench.runs.api",
    "Worker": "workbench.runs.api",
    "cancel": "workbench.runs.api",
    "latest_result": "workbench.runs.api",
    "notebook_params": "workbench.runs.api",
    "queue_run": "workbench.runs.api",
    "record": "workbench.runs.api",
    "results": "workbench.runs.api",
    "run": "workbench.runs.api",
}


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext workbench``: registers the ``%%sql`` cell magic."""
    from workbench.magics import load_ipython_extension as load

    load(ipython)


#: Modules whose whole ``__all__`` belongs to the facade (listed once, there).
_WHOLE_MODULES = ("workbench.accounts.api",)

#: Namespaces reached as attributes, e.g. ``wb.jobs.register(...)``.
_SUBMODULES = {"jobs": "workbench.scheduler.api"}


def __getattr__(name: str) -> Any:
    from workbench.app import explain_database, public_api
    from workbench.core.boundary import public_namespace

    if name in _SUBMODULES:
        module = import_module(_SUBMODULES[name])
        value: Any = public_namespace(module, f"workbench.{name}", explain=explain_database)
    elif name not in __all__:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    else:
        lazy = _LAZY.get(name)
        if lazy is None:
            lazy = next(m for m in _WHOLE_MODULES if name in import_module(m).__all__)
        value = getattr(import_module(lazy), name)
        if isinstance(value, FunctionType):
            value = public_api(value)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
