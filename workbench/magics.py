"""``%load_ext workbench``: the ``%%sql`` cell magic.

The cell is a query; ``:name`` placeholders are bound (never pasted in) from the notebook's
variables of the same name. The result is a DataFrame, shown as the cell's output, or stored
in a variable when one is named::

    %%sql recent --cache 60
    select * from sales where region = :region limit :n
"""

from __future__ import annotations

import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class

from workbench.data.backends.base import placeholders

__all__ = ["WorkbenchMagics", "load_ipython_extension"]


@magics_class
class WorkbenchMagics(Magics):
    """Magics that talk to the default workbench (settings from the environment)."""

    @cell_magic
    def sql(self, line: str, cell: str) -> Any:
        """Run the cell as SQL; ``:name`` parameters come from the notebook's variables.

        ``%%sql [VARIABLE] [--cache SECONDS]``: store the DataFrame in VARIABLE instead of
        showing it; cache the result for SECONDS.
        """
        from workbench.api import sql

        variable, cache = _arguments(line)
        namespace = self.shell.user_ns if self.shell is not None else {}
        missing = [n for n in placeholders(cell) if n not in namespace]
        if missing:
            raise UsageError(
                f"%%sql uses :{', :'.join(missing)} but no notebook variable has that name; "
                "define it in a cell above."
            )
        params = {n: namespace[n] for n in placeholders(cell)}
        result = sql(cell, cache=cache, **params)
        if variable:
            namespace[variable] = result
            return None
        return result


def _arguments(line: str) -> tuple[str | None, float | None]:
    """``[VARIABLE] [--cache SECONDS]`` from the magic's line."""
    words = shlex.split(line)
    variable: str | None = None
    cache: float | None = None
    while words:
        word = words.pop(0)
        if word == "--cache" and words:
            try:
                cache = float(words.pop(0))
            except ValueError:
                raise UsageError("--cache needs a number of seconds, e.g. --cache 60.") from None
        elif variable is None and word.isidentifier():
            variable = word
        else:
            raise UsageError(f"%%sql [VARIABLE] [--cache SECONDS]: unexpected {word!r}.")
    return variable, cache


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics with ``ipython`` (called by ``%load_ext workbench``)."""
    ipython.register_magics(WorkbenchMagics)
