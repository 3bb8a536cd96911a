"""Kernels forked from a pre-imported template process, instead of started from scratch.

Starting a kernel from scratch spends most of its CPU importing ipykernel, IPython and
workbench. A :class:`ForkServer` starts one *template* process that has done those imports
once (and nothing else: no sockets, no threads, no user code), then forks a child per kernel.
The child opens its own ZMQ sockets and becomes an ordinary ipykernel, so each kernel is still
a fresh process used for one run: forked children share no state with each other, only the
pristine imports of the template.

:class:`ForkProvisioner` plugs the fork server into jupyter_client as a kernel provisioner, so
the kernel manager, nbclient, interrupts, timeouts and shutdown work unchanged.

No orphans: the template gets ``SIGKILL`` when the worker that started it dies, and each
kernel gets ``SIGKILL`` when the template dies (Linux ``PR_SET_PDEATHSIG``); each kernel also
polls its parent like a kernel started by jupyter_client does.

With a kernel user (:mod:`workbench.runs.sandbox`) the template itself runs as that user, in
a folder of its own, so every kernel it forks is that user's from the start; each forked
kernel still gets its own folder (``HOME``, working folder, connection file and sockets).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

from workbench.ops.processes import KERNEL_TITLE, die_with_parent, set_title
from workbench.runs.errors import ForkServerError
from workbench.runs.sandbox import (
    KernelUser,
    kernel_folder,
    popen_options,
    remove_folder,
    seal_process,
    user_env,
)

__all__ = ["ForkProvisioner", "ForkServer", "UserProvisioner", "fork_supported"]

TEMPLATE_TITLE = "workbench-kernel-template"
# What the template imports before it forks anything; the warm-up a kernel would otherwise do.
_TEMPLATE_MAIN = "import workbench.runs.forkserver as f; f.template_main"
# Everything an initialised kernel has imported (ipykernel 7, IPython 9), so a child imports
# nothing; a module missing here only costs time.
TEMPLATE_IMPORTS = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.debugger",
    "IPython.core.debugger",
    "IPython.core.oinspect",
    "IPython.core.completerlib",
    "IPython.extensions.storemagic",
    "tornado.platform.asyncio",
    "faulthandler",
    "workbench.runs.results",
)


def fork_supported() -> bool:
    """Forked kernels need Linux (``prctl``) and ``os.fork``."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


# -- the template process -----------------------------------------------------------------


def _reap(*_: Any) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kernel_child(request: dict[str, Any], control: list[int], template: int) -> None:
    """In the forked child: become a fresh ipykernel for the given connection file."""
    try:
        for fd in control:
            os.close(fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        die_with_parent(template)  # the template's pid from before the fork: it may be gone
        set_title(KERNEL_TITLE)  # not the template's command line: a kernel, by name
        os.setsid()  # its own process group: signals reach the kernel and what it starts
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["JPY_PARENT_PID"] = str(template)
        if request.get("seal"):  # a kernel user's kernel: sealed against its other kernels
            seal_process()
        if request.get("cwd"):
            os.chdir(request["cwd"])
        if "numpy" in sys.modules:  # forked children would otherwise share a random state
            sys.modules["numpy"].random.seed()
        from ipykernel.kernelapp import IPKernelApp

        argv = [*request["argv"], f"--IPKernelApp.parent_handle={template}"]
        sys.argv = ["ipykernel_launcher", *argv]
        IPKernelApp.launch_instance(argv=argv)
    except BaseException:  # report, never return into the template's loop
        import traceback

        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def template_main(parent: int) -> None:
    """The template: import once, then fork one kernel per request line until stdin closes."""
    die_with_parent(parent)
    set_title(f"{TEMPLATE_TITLE} worker={parent}")
    # The control pipe moves off fds 0 and 1, which the kernels inherit as /dev/null and stderr.
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    replies = os.fdopen(os.dup(1), "wb", buffering=0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, _reap)
    import importlib

    # debugpy otherwise warns in every kernel that frozen modules may hide breakpoints.
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    for module in TEMPLATE_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    gc.freeze()  # imported objects stay out of the children's collections (fewer page copies)
    replies.write(b'{"ready": true}\n')
    control = [requests.fileno(), replies.fileno()]
    buffer = b""
    while True:
        chunk = requests.read(65536)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            request = json.loads(line)
            me = os.getpid()
            pid = os.fork()
            if pid == 0:
                _kernel_child(request, control, me)
            replies.write(json.dumps({"pid": pid}).encode() + b"\n")


# -- the worker side -------------------------------------------------------------------------


class ForkServer:
    """One template process per worker; :meth:`fork` returns a new kernel's pid.

    Start it from a thread that lives as long as the worker (the kernel pool's loop thread):
    Linux delivers the parent-death signal when the *thread* that started it exits.
    """

    def __init__(self, env: dict[str, str], user: KernelUser | None = None) -> None:
        self._lock = threading.Lock()
        self._seal = user is not None
        # As a kernel user, the template lives in a folder of its own (never the service's
        # working folder) and starts with nothing of the service's but the pool's env.
        self._folder: Path | None = None
        options: dict[str, Any] = {}
        if user is not None:
            self._folder = kernel_folder(user, prefix="wb-template-")
            env = {**env, **user_env(user, self._folder)}
            options = {"cwd": self._folder, **popen_options(user)}
        try:
            self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-c", f"{_TEMPLATE_MAIN}({os.getpid()})"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                start_new_session=True,
                **options,
            )
        except OSError:
            remove_folder(self._folder)
            raise
        if self._process.stdin is None or self._process.stdout is None:  # pragma: no cover
            raise ForkServerError("The kernel template process has no control pipe.")
        self._requests, self._replies = self._process.stdin, self._process.stdout
        ready = self._read()
        if not ready.get("ready"):
            self.close()
            raise ForkServerError("The kernel template process did not start.")

    @property
    def pid(self) -> int:
        return self._process.pid

    def _read(self) -> dict[str, Any]:
        line = self._replies.readline()
        if not line:
            raise ForkServerError("The kernel template process exited.")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def alive(self) -> bool:
        return self._process.poll() is None

    def fork(self, argv: list[str], env: dict[str, str], cwd: str | None) -> int:
        """Fork a kernel running ``ipykernel_launcher`` with ``argv`` (blocking, brief)."""
        request = {"argv": argv, "env": env, "cwd": cwd, "seal": self._seal}
        line = json.dumps(request).encode() + b"\n"
        with self._lock:
            try:
                self._requests.write(line)
                self._requests.flush()
            except OSError as exc:
                raise ForkServerError(f"The kernel template process is gone: {exc}") from None
            pid = int(self._read()["pid"])
        return pid

    def close(self) -> None:
        """Stop the template (running kernels are stopped by their managers)."""
        self._requests.close()
        self._replies.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        remove_folder(self._folder)


def _start_time(pid: int) -> str | None:
    """The process's start time from /proc (None once it has exited or is a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


class ForkedProcess:
    """The subset of ``subprocess.Popen`` the provisioner uses, for a kernel we did not fork."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._started = _start_time(pid)
        self.returncode: int | None = None if self._started else -1

    def poll(self) -> int | None:
        if self.returncode is None and _start_time(self.pid) != self._started:
            self.returncode = -1  # exited; the template reaped it, so the code is unknown
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.02)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class UserProvisioner(LocalProvisioner):
    """The local provisioner, handing the connection file to the kernel user (``owner``).

    The service writes the file (mode 0600) into the kernel's folder; the kernel, running as
    ``owner``, must read it. Popen options (``user``, ``group``, ...) reach ``Popen`` through
    jupyter_client's ``launch_kernel`` unchanged.
    """

    owner: KernelUser | None = None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        launch = await super().pre_launch(**kwargs)
        owner, manager = self.owner, self.parent
        if owner is not None and manager is not None:
            os.chown(manager.connection_file, owner.uid, owner.gid)
        return launch


class ForkProvisioner(UserProvisioner):
    """A jupyter_client provisioner whose kernels come from a :class:`ForkServer`.

    Everything but the launch is the local provisioner's: connection file, signals to the
    kernel's process group, kill and cleanup.
    """

    server: ForkServer | None = None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        server = self.server
        if server is None:
            raise ForkServerError("No kernel template process was given to the provisioner.")
        try:
            start = cmd.index("-f")
        except ValueError:
            raise ForkServerError(f"Unexpected kernel command: {cmd!r}") from None
        env = {str(k): str(v) for k, v in (kwargs.get("env") or os.environ).items()}
        cwd = kwargs.get("cwd")
        pid = server.fork(cmd[start:], env, str(cwd) if cwd else None)  # a few milliseconds
        self.process = ForkedProcess(pid)  # type: ignore[assignment]
        self.pid = pid
        self.pgid = pid  # the child called setsid()
        self.cwd = cwd or os.getcwd()
        return self.connection_info
