"""Spare kernel processes: a kernel's imports done before the kernel is asked for.

Most of a pre-heated kernel's warm-up is Python importing what a dashboard needs (ipykernel,
pandas, SQLAlchemy, widgets, Workbench). `workbench dashboards serve` starts one spare process
before it imports Voila, so the two import side by side; the spare imports those modules and
then waits. When the server starts a kernel, it hands the spare that kernel's command line,
environment and folder (:meth:`Spare.hand_over`) instead of starting a new process, the spare
becomes that kernel, and the server starts the next spare. A spare that is not needed exits
when the server closes its input; it dies with the server (``PR_SET_PDEATHSIG``).

Run as ``python -m workbench.dashboards.spare``; a handover is one line of JSON on stdin.

A spare, like every dashboard kernel, starts with :func:`kernel_environment` only: nothing of
the server's (its secret key, database URL, ``*_FILE`` paths, broker and Redis URLs, error
tracking), which ``/proc/<pid>/environ`` would keep showing after the handover.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.runs.sandbox import KernelUser

__all__ = [
    "PRELOADED",
    "REQUEST_KEY_ENV",
    "REQUEST_KEY_HEADER",
    "Spare",
    "kernel_environment",
    "reserve",
    "start",
    "take",
]

#: What a dashboard's kernel imports in any case, in the order a dashboard imports it.
PRELOADED = (
    "ipykernel.kernelapp",
    "ipywidgets",
    "bqplot",
    "pandas",
    "sqlalchemy",
    "workbench.api",
    "workbench.dashboards.viewer",
    "workbench.dashboards.widgets",
)
#: Of what Voila puts into a page's kernel for its request, besides ``VOILA_*``: the viewer
#: header the server sets (``HTTP_X_WORKBENCH_VIEWER``). The rest (query string, host name and
#: port, path) is the browser's to choose, and a kernel trusts nothing of the browser's.
REQUEST_NAMES = frozenset({"HTTP_X_WORKBENCH_VIEWER"})
#: ``VOILA_*`` variables a browser chooses (the page's address): never kept.
BROWSER_NAMES = frozenset({"VOILA_REQUEST_URL"})
#: A pre-heated kernel's secret for ``/voila/query/<its id>``, in its environment only, and
#: the request header the kernel sends it in (see :class:`.lockdown.LocalRequestInfoHandler`).
REQUEST_KEY_ENV = "WORKBENCH_PAGE_REQUEST_KEY"
REQUEST_KEY_HEADER = "X-Workbench-Kernel-Key"
#: Workbench settings a kernel may keep: none is a secret, a path or an address.
KEPT_SETTINGS = frozenset(
    {"WORKBENCH_ENV", "WORKBENCH_PLUGINS", "WORKBENCH_TRACE_PLUGINS", "WORKBENCH_LOG_LEVEL",
     "WORKBENCH_LOG_FORMAT"}
)  # fmt: skip
#: The kernel command a spare can stand in for: ``<this python> -m ipykernel_launcher ...``.
_LAUNCHER = ("-m", "ipykernel_launcher")


def kernel_environment(env: Mapping[str, str], home: str | None = None) -> dict[str, str]:
    """The environment of a dashboard kernel (or spare) from ``env``: an allow-list (what
    Python and Jupyter need, as a run's kernel keeps; Voila's ``VOILA_*`` but the page's
    address; the viewer header; a few harmless Workbench settings), with ``HOME`` set to
    ``home`` if given."""
    from workbench.runs.kernels import kernel_env

    kept = kernel_env(env)
    kept.update(
        {
            k: v
            for k, v in env.items()
            if (k.startswith("VOILA_") and k not in BROWSER_NAMES)
            or k in REQUEST_NAMES
            or k in KEPT_SETTINGS
        }
    )
    if home is not None:
        kept["HOME"] = home
    return kept


class Spare:
    """The server's handle on a spare kernel process."""

    def __init__(self, process: subprocess.Popen[bytes], folder: Path | None = None) -> None:
        self.process = process
        self.folder = folder
        """With a kernel user: the spare's own folder (its HOME and working folder), which
        becomes the kernel's folder (connection file and sockets) at the handover."""

    def fits(self, command: Sequence[str]) -> bool:
        """Whether this spare can become a kernel started with ``command``."""
        return (
            self.process.poll() is None
            and len(command) >= 3
            and os.path.realpath(command[0]) == os.path.realpath(sys.executable)
            and tuple(command[1:3]) == _LAUNCHER
        )

    def hand_over(self, command: Sequence[str], env: Mapping[str, str], cwd: str | None) -> None:
        """Make the spare the kernel ``command`` would have started."""
        stdin: IO[bytes] | None = self.process.stdin
        if stdin is None:  # pragma: no cover - always started with a pipe
            raise RuntimeError("the spare kernel has no input")
        # As jupyter_client's launcher does: the kernel exits when its parent (we) is gone.
        environment = {**env, "JPY_PARENT_PID": str(os.getpid())}
        order = {"argv": list(command[3:]), "env": environment, "cwd": cwd}
        stdin.write(json.dumps(order).encode("utf-8") + b"\n")
        stdin.flush()

    def close(self) -> None:
        """Let an unused spare exit (and remove its folder)."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self.folder is not None:
            from workbench.runs.sandbox import remove_folder

            remove_folder(self.folder)  # it exits on its own; its folder may go first


_spare: Spare | None = None


_UNSET: object = object()


def start(user: KernelUser | object | None = _UNSET) -> Spare:
    """Start the spare (its imports run while the caller goes on), as ``user`` with a folder
    of its own when kernels run as a kernel user (default: WORKBENCH_KERNEL_USER's)."""
    from workbench.runs import sandbox

    global _spare
    if user is _UNSET:
        from workbench.core.config import load_settings

        user = sandbox.kernel_user(load_settings())
    owner = user if isinstance(user, sandbox.KernelUser) else None
    folder = sandbox.kernel_folder(owner) if owner is not None else None
    env = kernel_environment(os.environ)
    if folder is not None:
        env.update(sandbox.user_env(owner, folder))
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, module and pid
        # Our pid: the spare (and the kernel it becomes) dies with this server.
        [sys.executable, "-m", "workbench.dashboards.spare", str(os.getpid())],
        stdin=subprocess.PIPE,
        start_new_session=True,  # as jupyter_client starts kernels: no terminal signals
        # It becomes a kernel: nothing of the server's, not even in the environment it was
        # started with (which /proc/<pid>/environ keeps showing).
        env=env,
        cwd=str(folder) if folder is not None else None,
        **sandbox.popen_options(owner),
    )
    _spare = Spare(process, folder)
    return _spare


def reserve() -> Spare | None:
    """The waiting spare, once, for a kernel about to start (see :func:`take`)."""
    global _spare
    spare, _spare = _spare, None
    return spare


def take(command: Sequence[str], spare: Spare | None) -> Spare | None:
    """``spare`` (as :func:`reserve` gave it) if it can run ``command``; else it is closed."""
    if spare is not None and spare.fits(command):
        return spare
    if spare is not None:
        spare.close()
    return None


def _become_kernel() -> None:
    import importlib

    from workbench.dashboards.startup import skip_slow_imports
    from workbench.ops.processes import die_with_parent

    if len(sys.argv) > 1:  # the server's pid: SIGKILL when it dies (exit if it already has)
        die_with_parent(int(sys.argv[1]))

    skip_slow_imports()
    for module in PRELOADED:
        importlib.import_module(module)
    line = sys.stdin.buffer.readline()
    if not line:
        return  # the server did not need this spare
    order = json.loads(line)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in order["env"].items()})
    if order.get("cwd"):
        os.chdir(order["cwd"])
    del sys.path[0]  # the folder this spare started in (the kernel adds its own back)
    sys.argv = ["ipykernel_launcher", *order["argv"]]
    import ipywidgets
    from ipykernel.kernelapp import IPKernelApp

    # The kernel's parent (to exit with it) is read from the environment at import time,
    # before the handover set it: name it again.
    app = IPKernelApp.instance(parent_handle=int(os.environ.get("JPY_PARENT_PID") or 0))
    app.initialize()  # type: ignore[no-untyped-call]
    # ipywidgets registers its comm targets when imported inside a kernel; it was imported
    # before there was one, so register them now (the browser's widgets talk through them).
    ipywidgets.register_comm_target()
    app.start()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    _become_kernel()
