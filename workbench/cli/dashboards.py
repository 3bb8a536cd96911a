"""`workbench dashboards`: serve the Voila dashboards with Workbench sign-in, list them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from workbench.cli.common import WorkbenchTyper
from workbench.cli.common import settings_of as _settings
from workbench.cli.output import Column, JsonOption, print_rows

app = WorkbenchTyper(help="Serve and list the Voila dashboards.", no_args_is_help=True)
console = Console()


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8866,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    pool_size: Annotated[
        int, typer.Option(help="Pre-heated kernels kept ready per dashboard (0: none).", min=0)
    ] = 4,
    folder: Annotated[
        list[Path] | None,
        typer.Option(help="A dashboards folder to serve (repeatable); default: the registered."),
    ] = None,
) -> None:
    """Serve the dashboards until stopped (Ctrl-C or SIGTERM stops every kernel too)."""
    from workbench.dashboards import catalog, spare
    from workbench.dashboards.startup import skip_slow_imports
    from workbench.db.failures import require_existing

    # What would stop the server is said before anything starts: no folder, no database.
    catalog.dashboard_folders(_settings(ctx), list(folder or ()))
    require_existing(_settings(ctx))  # only `workbench init` creates the database
    if pool_size > 0:
        spare.start()  # the first kernel's imports run beside the server's
    skip_slow_imports()  # before Voila is imported
    from workbench.app import Workbench
    from workbench.dashboards.server import ServeOptions, serve

    options = ServeOptions(host=host, port=port, pool_size=pool_size, folders=tuple(folder or ()))
    console.print(f"Serving dashboards at http://{escape(host)}:{port}/ (Ctrl-C stops)")
    serve(Workbench(_settings(ctx)), options)


@app.command("list")
def list_command(
    ctx: typer.Context,
    folder: Annotated[list[Path] | None, typer.Option(help="A dashboards folder.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the dashboards that `serve` would offer, and who may open them."""
    from workbench.dashboards import catalog

    settings = _settings(ctx)
    rows = [
        {
            "dashboard": dashboard.name,
            "title": dashboard.title,
            "roles": sorted(r.value for r in dashboard.roles or ()) or ["everyone"],
            "folder": str(path),
        }
        for path in catalog.dashboard_folders(settings, list(folder or ()))
        for dashboard in catalog.list_dashboards(path)
    ]
    columns = (
        Column("dashboard", "dashboard", identifier=True),
        Column("title", "title"),
        Column("roles", "roles"),
        Column("folder", "folder", identifier=True),
    )
    print_rows(rows, columns, as_json=as_json, title="Dashboards")
