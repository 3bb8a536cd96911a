"""The ``jupyterhub_config.py`` of `workbench hub config`: the Workbench authenticator and
spawner, the proxy, the hub's private state folder and, optionally, the dashboards server and
the scheduler as services the hub starts and stops.

The file holds no secret: the hub reads the master key and the service's login from its own
environment (``WORKBENCH_*`` settings or their ``_FILE`` paths) when it starts, and hands them
to its managed services only, never to a single-user server.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from workbench.hub.errors import HubError

__all__ = ["PROXY", "HubConfig", "find_proxy", "render_config", "write_config"]

#: JupyterHub's proxy, from npm (deploy/hub/package-lock.json pins it).
PROXY = "configurable-http-proxy"


def find_proxy() -> Path:
    """The proxy's command: beside this Python (where the project's set-up links it) or on
    ``PATH``; :class:`HubError` when it is installed in neither."""
    beside = Path(sys.executable).with_name(PROXY)
    if beside.exists():
        return beside
    found = shutil.which(PROXY)
    if found is None:
        raise HubError(
            f"JupyterHub's proxy ({PROXY}) is not installed: run `npm ci --prefix deploy/hub` "
            "in the project (the set-up of scripts/test.sh does it), or pass --proxy PATH."
        )
    return Path(found)


@dataclass(frozen=True)
class HubConfig:
    """What the configuration file says; every path absolute."""

    state_dir: Path
    proxy: Path
    ip: str = "127.0.0.1"
    port: int = 8000
    system_user_template: str = "{username}"
    dashboards_port: int | None = None
    scheduler: bool = False


def _services(config: HubConfig) -> str:
    workbench = str(Path(sys.executable).with_name("workbench"))
    services: list[tuple[str, list[str]]] = []
    if config.dashboards_port is not None:
        command = [workbench, "dashboards", "serve", "--port", str(config.dashboards_port)]
        services.append(("workbench-dashboards", command))
    if config.scheduler:
        services.append(("workbench-scheduler", [workbench, "scheduler"]))
    if not services:
        return ""
    entries = "".join(
        f"    {{'name': {name!r}, 'command': {command!r}, 'environment': _service_env}},\n"
        for name, command in services
    )
    return (
        "\n# Services the hub starts and stops: they are the service's processes, so they get\n"
        "# the hub's own Workbench settings (its key and login), read when the hub starts.\n"
        "_service_env = {k: v for k, v in os.environ.items() if k.startswith('WORKBENCH_')}\n"
        f"c.JupyterHub.services = [\n{entries}]\n"
    )


def render_config(config: HubConfig) -> str:
    """The text of ``jupyterhub_config.py`` for ``config``."""
    state = str(config.state_dir)
    return (
        '"""JupyterHub for Workbench (written by `workbench hub config`; see docs/lab.md)."""\n'
        "\n"
        "import os\n"
        "\n"
        "c = get_config()  # noqa: F821 (JupyterHub's configuration loader defines it)\n"
        "\n"
        "# The hub's own state (its database, cookie secret and proxy token): the hub's only.\n"
        f"_state = {state!r}\n"
        "os.makedirs(_state, mode=0o700, exist_ok=True)\n"
        "os.chmod(_state, 0o700)\n"
        "c.JupyterHub.db_url = 'sqlite:///' + os.path.join(_state, 'jupyterhub.sqlite')\n"
        "c.JupyterHub.cookie_secret_file = os.path.join(_state, 'jupyterhub_cookie_secret')\n"
        "c.JupyterHub.pid_file = os.path.join(_state, 'jupyterhub.pid')\n"
        f"c.JupyterHub.bind_url = {f'http://{config.ip}:{config.port}/'!r}\n"
        f"c.ConfigurableHTTPProxy.command = [{str(config.proxy)!r}]\n"
        "\n"
        "# Workbench accounts sign in; teams become hub groups; a disabled account is refused.\n"
        "c.JupyterHub.authenticator_class = 'workbench'\n"
        "# Each analyst's server runs as their own system user, with their own login only.\n"
        "c.JupyterHub.spawner_class = 'workbench'\n"
        f"c.WorkbenchSpawner.system_user_template = {config.system_user_template!r}\n"
        "c.Spawner.default_url = '/lab'\n" + _services(config)
    )


def write_config(path: Path, text: str, *, force: bool) -> None:
    """Write the configuration (readable by all: it holds no secret), never over an
    existing file without ``force``."""
    if path.exists() and not force:
        raise HubError(f"{path} exists; pass --force to replace it.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}")
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        raise HubError(f"{path} cannot be written: {exc.strerror}.") from None
