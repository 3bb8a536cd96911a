"""`workbench lab`: JupyterLab with Workbench, for the analyst's seat."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from workbench.cli.common import console, settings_of

__all__ = ["lab"]


def lab(
    ctx: typer.Context,
    notebook_dir: Annotated[
        Path | None,
        typer.Argument(help="The folder JupyterLab opens (default: the current one).", exists=True),
    ] = None,
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8888,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Do not open a browser tab.")
    ] = False,
    allow_root: Annotated[
        bool, typer.Option("--allow-root", help="Run even as root (containers, CI).")
    ] = False,
) -> None:
    """Start JupyterLab with Workbench: its API under /workbench/api/ and kernels that reach
    this workbench (in team mode: your own login only). Ctrl-C or SIGTERM stops every kernel."""
    from workbench.app import Workbench
    from workbench.db.failures import require_existing
    from workbench.lab.seat import KERNEL_ARGS, check_seat

    settings = settings_of(ctx)
    require_existing(settings)  # only `workbench init` creates the database
    with Workbench(settings) as workbench:
        seat = check_seat(workbench)  # refused here, before a server or kernel starts
    from jupyterlab.labapp import LabApp

    root = (notebook_dir or Path.cwd()).resolve()
    argv = [
        "--ServerApp.jpserver_extensions",
        "workbench.lab=True",
        f"--ServerApp.root_dir={root}",
        f"--ServerApp.ip={host}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # the port asked for, or a clear failure
        f"--ServerApp.open_browser={not no_browser}",
        f"--ServerApp.allow_root={allow_root}",
        # No calls out of the analyst's seat: no news feed, no update check.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *KERNEL_ARGS,
    ]
    who = f"as {seat.login}" if seat.login else "on the embedded database"
    console.print(f"JupyterLab with Workbench {who} on http://{host}:{port}/lab", highlight=False)
    LabApp.launch_instance(argv=argv)
