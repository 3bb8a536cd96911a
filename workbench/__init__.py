"""Workbench: one governed database, one plugin system and one task system on Jupyter.

``import workbench as wb`` is cheap: submodules load on first use of a name.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from workbench.api import InitResult, Workbench, close, connect, default, init
    from workbench.errors import WorkbenchError

__all__ = [
    "InitResult",
    "Workbench",
    "WorkbenchError",
    "__version__",
    "close",
    "connect",
    "default",
    "init",
]

_LAZY = {
    "InitResult": "workbench.api",
    "Workbench": "workbench.api",
    "close": "workbench.api",
    "connect": "workbench.api",
    "default": "workbench.api",
    "init": "workbench.api",
    "WorkbenchError": "workbench.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
