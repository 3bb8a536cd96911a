"""What every command group shares: the loaded settings, a workbench, the consoles, and the
Typer whose help reads as a user types the command (`run [OPTIONS] NOTEBOOK`, bare flags)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperCommand, TyperGroup

from workbench.cli.errors import SecretFilesExistError
from workbench.core.config import Settings, load_settings

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = ["WorkbenchTyper", "console", "err_console", "settings_of", "workbench_of"]

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root command loaded (and checked) for this invocation."""
    settings = ctx.find_root().obj
    return settings if isinstance(settings, Settings) else load_settings()


@contextmanager
def workbench_of(ctx: typer.Context) -> Iterator[Workbench]:
    """A workbench on the configured database, closed when the command ends."""
    from workbench.app import Workbench
    from workbench.db.failures import require_existing

    settings = settings_of(ctx)
    require_existing(settings)  # only `workbench init` creates the database
    wb = Workbench(settings)
    try:
        yield wb
    finally:
        wb.close()


def _plain_metavars(params: list[Any]) -> list[Any]:
    """Arguments named in capitals (NOTEBOOK), flags with no `<bool>` type after them."""
    for param in params:
        if isinstance(param, TyperArgument) and param.metavar is None and param.name:
            param.metavar = param.name.upper()
        elif param.param_type_name == "option" and getattr(param, "is_flag", False):
            param.metavar = ""  # typer shows a flag's metavar in place of its type
    return params


# typer carries its own copy of click: its contexts and parameters are typed as Any here.
class WorkbenchCommand(TyperCommand):
    """A command whose help reads as a user types it: `run [OPTIONS] NOTEBOOK`, and flags
    (`--json`, `--help`) with no `<bool>` after them."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_metavars(super().get_params(ctx))  # with the help option

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        # typer writes a required argument as {name}; the usage line names it bare.
        pieces = super().collect_usage_pieces(ctx)
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in pieces]


class WorkbenchGroup(TyperGroup):
    """A command group whose `--help` flag has no `<bool>` after it either."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_metavars(super().get_params(ctx))


class WorkbenchTyper(typer.Typer):
    """A Typer of :class:`WorkbenchGroup` and :class:`WorkbenchCommand` unless told otherwise."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("cls", WorkbenchGroup)
        super().__init__(*args, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        kwargs.setdefault("cls", WorkbenchCommand)
        return super().command(*args, **kwargs)


def write_private(path: Path, value: str, *, force: bool) -> None:
    """Write ``value`` to ``path`` through a temporary file of mode 0600 in the same folder.

    Without ``force`` the file is linked into place, which fails when the name exists, so a
    file created meanwhile is never replaced; with ``force`` it replaces the old file. For
    the secret files the command line writes (`deploy secrets`, `users connection-url`).
    """
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value)
            fh.flush()
            os.fsync(fh.fileno())
        if force:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)
            except FileExistsError:
                raise SecretFilesExistError(
                    f"{path} appeared while writing; nothing there was replaced. "
                    "Pass --force to replace it."
                ) from None
            temp.unlink()
    finally:
        temp.unlink(missing_ok=True)
