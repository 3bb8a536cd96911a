"""``%load_ext workbench``: the ``%%sql`` and ``%sql`` magics, saved snippets, ``%wb``, and
completion of table and column names in SQL cells.

A query's ``:name`` placeholders are bound (never pasted in) from the notebook's variables of
the same name. The result is a DataFrame, shown as the cell's output (pandas truncates long
ones), or stored in a variable when one is named::

    %%sql recent --cache 60
    select * from sales where region = :region limit :n

A query saved with ``--save NAME`` is composed into later ones as a common table expression
with ``--with NAME[,NAME...]``, so a long query is built from named parts::

    %%sql --save late --no-execute
    select * from flights where arr_delay > 15

    %%sql --with late
    select carrier, count(*) as n from late group by carrier

``%wb tables``, ``%wb describe TABLE``, ``%wb profile TABLE`` and ``%wb snippets`` describe
what the login may read. Everything runs on the default workbench (settings from the
environment), with its login.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from typing import Any

from IPython.core.completer import (
    CompletionContext,
    SimpleCompletion,
    SimpleMatcherResult,
    context_matcher,
)
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class

from workbench.data.backends.base import placeholders

__all__ = ["WorkbenchMagics", "load_ipython_extension"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
SQL_USAGE = (
    "%%sql [VARIABLE] [--cache SECONDS] [--save NAME] [--with NAME[,NAME...]] [--no-execute]"
)
WB_USAGE = "%wb tables | describe TABLE | profile TABLE | snippets"
#: Seconds the completion keeps the table and column names before asking the database again.
NAMES_TTL = 30.0


@dataclass
class SqlOptions:
    variable: str | None = None
    cache: float | None = None
    save: str | None = None
    with_: tuple[str, ...] = ()
    execute: bool = True


def _name(word: str, what: str) -> str:
    if not _NAME.match(word):
        raise UsageError(f"{what} {word!r} is not a name: use letters, digits and underscores.")
    return word


def parse_options(line: str, *, allow_variable: bool = True) -> SqlOptions:
    """The options of ``%%sql``'s line (see :data:`SQL_USAGE`)."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{SQL_USAGE}: {exc}.") from None
    options = SqlOptions()
    while words:
        word = words.pop(0)
        if word in {"--cache", "--save", "--with"} and not words:
            raise UsageError(f"{word} needs a value: {SQL_USAGE}.")
        if word == "--cache":
            try:
                options.cache = float(words.pop(0))
            except ValueError:
                raise UsageError("--cache needs a number of seconds, e.g. --cache 60.") from None
        elif word == "--save":
            options.save = _name(words.pop(0), "The snippet name")
        elif word == "--with":
            names = words.pop(0).split(",")
            options.with_ = tuple(_name(n.strip(), "The snippet name") for n in names)
        elif word == "--no-execute":
            options.execute = False
        elif allow_variable and options.variable is None and word.isidentifier():
            options.variable = word
        else:
            raise UsageError(f"{SQL_USAGE}: unexpected {word!r}.")
    return options


def compose(query: str, names: tuple[str, ...], snippets: dict[str, str]) -> str:
    """``query`` with the saved ``snippets`` called ``names`` as common table expressions."""
    missing = [n for n in names if n not in snippets]
    if missing:
        saved = ", ".join(sorted(snippets)) or "none yet"
        raise UsageError(
            f"No snippet {', '.join(missing)} (saved: {saved}); save one with --save NAME."
        )
    if not names:
        return query
    parts = ",\n".join(f"{name} AS (\n{snippets[name].strip().rstrip(';')}\n)" for name in names)
    return f"WITH {parts}\n{query.strip()}"


@magics_class
class WorkbenchMagics(Magics):
    """Magics that talk to the default workbench (settings from the environment)."""

    def __init__(self, shell: Any = None) -> None:
        super().__init__(shell)
        self.snippets: dict[str, str] = {}
        self._names: tuple[float, list[str]] | None = None

    def _run(self, query: str, options: SqlOptions) -> Any:
        from workbench.api import sql

        composed = compose(query, options.with_, self.snippets)
        if options.save:
            self.snippets[options.save] = composed
        if not options.execute:
            return None
        namespace = self.shell.user_ns if self.shell is not None else {}
        missing = [n for n in placeholders(composed) if n not in namespace]
        if missing:
            raise UsageError(
                f"%%sql uses :{', :'.join(missing)} but no notebook variable has that name; "
                "define it in a cell above."
            )
        params = {n: namespace[n] for n in placeholders(composed)}
        result = sql(composed, cache=options.cache, **params)
        if options.variable:
            namespace[options.variable] = result
            return None
        return result

    @line_cell_magic
    def sql(self, line: str, cell: str | None = None) -> Any:
        """Run SQL; ``:name`` parameters come from the notebook's variables.

        ``%%sql [VARIABLE] [--cache SECONDS] [--save NAME] [--with NAME,...] [--no-execute]``:
        store the DataFrame in VARIABLE instead of showing it; cache the result for SECONDS;
        save the query as the snippet NAME; compose saved snippets as common table
        expressions; only save, without running. ``%sql [--cache S] [--with ...] QUERY`` runs
        one line (assign it with ``rows = %sql select ...``).
        """
        if cell is not None:
            if not cell.strip():
                raise UsageError(f"The cell holds no query: {SQL_USAGE}, then the query below.")
            return self._run(cell, parse_options(line))
        words = line.split()
        split = 0
        while split < len(words) and words[split].startswith("--"):
            split += 1 if words[split] == "--no-execute" else 2
        options = parse_options(" ".join(words[:split]), allow_variable=False)
        query = " ".join(words[split:])
        if not query:
            raise UsageError("%sql [--cache SECONDS] [--with NAME,...] QUERY: no query given.")
        return self._run(query, options)

    @line_magic
    def wb(self, line: str) -> Any:
        """``%wb tables | describe TABLE | profile TABLE | snippets``."""
        import pandas as pd

        from workbench.api import describe, tables
        from workbench.app import default
        from workbench.data.profile import profile_table

        words = line.split()
        verb, args = (words[0], words[1:]) if words else ("", [])
        if verb == "tables" and not args:
            return tables()
        if verb == "describe" and len(args) == 1:
            return describe(args[0])
        if verb == "profile" and len(args) == 1:
            return profile_table(default(), args[0])
        if verb == "snippets" and not args:
            return pd.DataFrame(
                {"snippet": list(self.snippets), "query": list(self.snippets.values())}
            )
        raise UsageError(f"{WB_USAGE}: not {line.strip()!r}.")

    def names(self) -> list[str]:
        """The tables the login may read and their columns, kept :data:`NAMES_TTL` seconds."""
        import sqlalchemy as sa

        from workbench.api import tables
        from workbench.app import default

        now = time.monotonic()
        if self._names is not None and now - self._names[0] < NAMES_TTL:
            return self._names[1]
        found: set[str] = set()
        inspector = sa.inspect(default().engine)  # the columns only: no row counts on Tab
        for table in tables()["name"]:
            found.add(str(table))
            found.update(str(c["name"]) for c in inspector.get_columns(str(table)))
        self._names = (now, sorted(found))
        return self._names[1]


def _sql_matcher(magics: WorkbenchMagics) -> Any:
    @context_matcher()  # type: ignore[untyped-decorator]
    def complete_sql(context: CompletionContext) -> SimpleMatcherResult:
        """Table and column names while the cursor is in a ``%%sql`` cell or ``%sql`` line."""
        # The context's cursor is a line and a column in that line.
        lines = context.full_text.split("\n")
        first = next((n for n, text in enumerate(lines) if text.strip()), 0)
        in_cell = lines[first].lstrip().startswith("%%sql")
        before = context.text_until_cursor
        if not (in_cell or "%sql " in before):
            return {"completions": [], "suppress": False}
        if in_cell and context.cursor_line <= first:  # on the magic's own line: its options
            return {"completions": [], "suppress": False}
        token = re.split(r"[^A-Za-z0-9_]", before)[-1]
        try:
            names = magics.names()
        except Exception:  # no database to ask: no completions, never an error in the cell
            return {"completions": [], "suppress": False}
        matches = [SimpleCompletion(text=n, type="sql") for n in names if n.startswith(token)]
        return {"completions": matches, "suppress": bool(matches)}

    return complete_sql


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics with ``ipython`` (called by ``%load_ext workbench``)."""
    magics = WorkbenchMagics(ipython)
    ipython.register_magics(magics)
    completer = getattr(ipython, "Completer", None)
    if completer is not None:
        completer.custom_matchers.append(_sql_matcher(magics))
