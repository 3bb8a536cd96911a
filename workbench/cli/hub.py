"""`workbench hub`: JupyterHub with Workbench sign-in, for analysts in team mode."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from workbench.cli.common import WorkbenchTyper, console, settings_of

__all__ = ["app"]

app = WorkbenchTyper(
    help="JupyterHub for analysts in team mode: Workbench sign-in, one server per analyst.",
    no_args_is_help=True,
)


@app.callback()
def _hub(ctx: typer.Context) -> None:
    """The production check: the hub is a service (it holds the key); an analyst's server
    under it runs without the key by design."""
    from workbench.core.production import ensure_production_safe

    seat = ctx.invoked_subcommand == "singleuser"
    ensure_production_safe(settings_of(ctx), allow_missing_key=seat)


Port = Annotated[int, typer.Option(help="Port the hub listens on.", min=1, max=65535)]
Host = Annotated[str, typer.Option("--ip", help="Address the hub listens on.")]
Proxy = Annotated[
    Path | None,
    typer.Option(help="configurable-http-proxy's command (default: the installed one)."),
]
SystemUser = Annotated[
    str,
    typer.Option(
        help="The system user each analyst's server runs as; {username} is their name.",
    ),
]
DashboardsPort = Annotated[
    int | None,
    typer.Option(help="Also run the dashboards server on this port, as a hub service."),
]
Scheduler = Annotated[
    bool, typer.Option("--scheduler", help="Also run the scheduler, as a hub service.")
]


def _render(
    ctx: typer.Context,
    port: int,
    ip: str,
    proxy: Path | None,
    system_user: str,
    dashboards_port: int | None,
    scheduler: bool,
) -> str:
    from workbench.hub.config import HubConfig, find_proxy, render_config
    from workbench.hub.errors import HubError

    if importlib.util.find_spec("jupyterhub") is None:
        raise HubError("JupyterHub is not installed: pip install 'workbench[hub]'.")
    settings = settings_of(ctx)
    proxy = proxy or find_proxy()
    if not proxy.exists():
        raise HubError(
            f"{proxy} does not exist: install JupyterHub's proxy with `npm ci --prefix "
            "deploy/hub` in the project, or pass the path of configurable-http-proxy."
        )
    config = HubConfig(
        state_dir=(settings.home_path / "hub").resolve(),
        proxy=proxy.resolve(),
        ip=ip,
        port=port,
        system_user_template=system_user,
        dashboards_port=dashboards_port,
        scheduler=scheduler,
    )
    return render_config(config)


@app.command("config")
def config(
    ctx: typer.Context,
    write: Annotated[
        Path | None, typer.Option(help="Write the file here instead of printing it.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
    port: Port = 8000,
    ip: Host = "127.0.0.1",
    proxy: Proxy = None,
    system_user: SystemUser = "{username}",
    dashboards_port: DashboardsPort = None,
    scheduler: Scheduler = False,
) -> None:
    """Print (or --write) a jupyterhub_config.py: Workbench sign-in, each analyst's server as
    their own system user with their own login, the hub's state under $WORKBENCH_HOME/hub."""
    from workbench.hub.config import write_config

    text = _render(ctx, port, ip, proxy, system_user, dashboards_port, scheduler)
    if write is None:
        typer.echo(text, nl=False)
        return
    write_config(write, text, force=force)
    console.print(f"Wrote {write}; start the hub with `jupyterhub -f {write}` (as root).")


@app.command("serve")
def serve(
    ctx: typer.Context,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config", help="A jupyterhub_config.py (default: written from the options)."
        ),
    ] = None,
    port: Port = 8000,
    ip: Host = "127.0.0.1",
    proxy: Proxy = None,
    system_user: SystemUser = "{username}",
    dashboards_port: DashboardsPort = None,
    scheduler: Scheduler = False,
) -> None:
    """Run JupyterHub with Workbench sign-in until stopped (the image's `hub` role)."""
    from workbench.hub.config import write_config

    if config_file is None:
        text = _render(ctx, port, ip, proxy, system_user, dashboards_port, scheduler)
        config_file = settings_of(ctx).home_path / "hub" / "jupyterhub_config.py"
        write_config(config_file, text, force=True)
    hub = Path(sys.executable).with_name("jupyterhub")
    # The hub takes this process over, so a service manager's signals reach it directly.
    os.execv(hub, [str(hub), "-f", str(config_file)])  # noqa: S606 (our own hub, no shell)


@app.command(
    "singleuser",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def singleuser(ctx: typer.Context) -> None:
    """Run one analyst's JupyterLab for the hub (the spawner's command; its options go to
    jupyterhub-singleuser). Refuses the master key and the service's login first."""
    from workbench.app import Workbench
    from workbench.db.failures import require_existing
    from workbench.lab.seat import KERNEL_ARGS, check_seat

    settings = settings_of(ctx)
    require_existing(settings)  # a server never creates an empty database
    with Workbench(settings) as workbench:
        check_seat(workbench)  # refused here, before a server or kernel starts
    server = Path(sys.executable).with_name("jupyterhub-singleuser")
    # The server takes this process over: the hub's signals reach it directly.
    os.execv(server, [str(server), *KERNEL_ARGS, *ctx.args])  # noqa: S606 (the hub's own server, no shell)
