"""What every command group shares: the loaded settings, a workbench, the consoles."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from workbench.core.config import Settings, load_settings

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = ["console", "err_console", "settings_of", "workbench_of"]

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
