"""Warm kernels: fresh kernels started ahead of time, each serving exactly one run.

A :class:`KernelPool` owns an asyncio loop in a daemon thread. It keeps ``size`` kernels
started (with their clients connected and workbench pre-imported) and hands each to one run;
taking one starts its replacement in the background, and a used kernel is always shut down,
never reused, so no state passes from one run to the next. ``size=0`` starts a kernel on
demand for each run (a cold start).

Kernels of a replenishing pool are forked from a pre-imported template process
(:mod:`workbench.runs.forkserver`), which cuts a kernel's start-up CPU by an order of
magnitude; each forked kernel is still a new process used for exactly one run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager

from workbench.db.types import utcnow
from workbench.ops import metrics
from workbench.ops.processes import KERNEL_TITLE, parent_death_hook
from workbench.ops.tracking import scrub_environment
from workbench.runs.errors import KernelError
from workbench.runs.results import RUN_ID_ENV
from workbench.runs.sandbox import (
    SEAL_CODE,
    KernelUser,
    kernel_folder,
    popen_options,
    remove_folder,
    seal_folder,
    user_env,
)

if TYPE_CHECKING:
    from workbench.runs.forkserver import ForkServer

__all__ = ["KernelPool", "WarmKernel", "bind_code", "kernel_env"]

T = TypeVar("T")
log = logging.getLogger(__name__)
KERNEL_NAME = "python3"
READY_TIMEOUT = 60.0
# Imported in a warm kernel before any run, without binding names in the user namespace.
WARMUP = "__import__('workbench.runs.results')"


#: Variables of the starting process a kernel keeps (by name or prefix): what Python, its
#: libraries and Jupyter need, never anything of the service (its database URL, secret key,
#: ``*_FILE`` paths, broker and Redis URLs, error tracking, cloud credentials).
KEPT_NAMES = frozenset(
    {"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR", "USER", "LOGNAME", "HOME", "SHELL",
     "PYTHONPATH", "PYTHONHASHSEED", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
     "VIRTUAL_ENV", "MPLBACKEND", "SSL_CERT_FILE", "SSL_CERT_DIR", "OMP_NUM_THREADS",
     "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_MAX_THREADS",
     "PYDEVD_DISABLE_FILE_VALIDATION"}
)  # fmt: skip
KEPT_PREFIXES = ("LC_", "CONDA_", "JUPYTER_", "JPY_", "IPYTHON")


def kernel_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a kernel starts with: the allow-listed part of ``environ`` (this
    process's by default).

    A kernel starts with nothing of the service: no ``WORKBENCH_*`` variable (the database
    URL, the secret key, their ``*_FILE`` paths), no metrics folder, no error tracking, no
    broker URL. A run's identity (its owner's login) reaches it only at bind time
    (:func:`bind_code`).
    """
    source = os.environ if environ is None else environ
    env = {
        k: v
        for k, v in source.items()
        if (k in KEPT_NAMES or k.startswith(KEPT_PREFIXES)) and k != metrics.MULTIPROC_ENV
    }
    return scrub_environment(env)


def bind_code(env: Mapping[str, str], folder: str, extra: str = "") -> str:
    """Silent set-up binding a warm kernel to one run: its variables, ``extra`` set-up code
    (handing over the run's secrets) and its working folder.

    Only ``repr`` of strings is interpolated, and no name is bound in the user namespace. A
    notebook folder the kernel's OS user may not enter leaves it in its own folder. The kernel
    takes the run's id into its name (``workbench-kernel run=<id>`` in ``ps``).
    """
    clean = {str(k): str(v) for k, v in env.items()}
    drop = [f"{k}_FILE" for k in clean]
    title = f"{KERNEL_TITLE} run={clean[RUN_ID_ENV]}" if RUN_ID_ENV in clean else KERNEL_TITLE
    return (
        "try:\n"
        f"    __import__('setproctitle').setproctitle({title!r})\n"
        "except ImportError:\n"
        "    pass\n"
        f"__import__('os').environ.update({clean!r})\n"
        f"[__import__('os').environ.pop(k, None) for k in {drop!r}]\n"
        f"{extra}\n"
        "try:\n"
        f"    __import__('os').chdir({folder!r})\n"
        "except OSError:\n"
        "    pass\n"
    )


def _ipc_dir() -> str:
    from jupyter_core.paths import jupyter_runtime_dir

    folder = jupyter_runtime_dir()
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder


@dataclass
class WarmKernel:
    """A started kernel with a connected client, for exactly one run."""

    manager: AsyncKernelManager
    client: AsyncKernelClient
    started_at: datetime
    #: The kernel user's folder for this kernel (HOME, connection file, sockets), or None.
    folder: Path | None = None

    async def run_silently(self, code: str, timeout: float = 30.0) -> None:
        """Run set-up code that leaves no output and no history."""
        reply = await self.client.execute_interactive(
            code, silent=True, store_history=False, timeout=timeout
        )
        if reply["content"].get("status") != "ok":
            raise KernelError(f"Kernel set-up failed: {reply['content'].get('ename')}")

    async def discard(self) -> None:
        """Stop the client and kill the kernel process."""
        self.client.stop_channels()
        try:
            await self.manager.shutdown_kernel(now=True)
        except Exception:
            await self.manager.cleanup_resources()
        remove_folder(self.folder)


class KernelPool:
    """Keeps ``size`` fresh kernels ready; see the module docstring."""

    def __init__(
        self,
        size: int = 1,
        *,
        env: Mapping[str, str] | None = None,
        replenish: bool = True,
        warmup: bool = True,
        fork: bool | None = None,
        kernel_user: KernelUser | None = None,
    ) -> None:
        from workbench.runs.forkserver import fork_supported

        self.size = size
        # Kernels (and the fork server's template) run as this OS user (runs.sandbox).
        self.kernel_user = kernel_user
        self.replenish = replenish
        self.warmup = warmup
        # The template pays off from the second kernel on: by default only a pool that keeps
        # kernels warm and replaces them forks (a one-kernel, one-run pool starts it directly).
        default = size > 0 and replenish
        self.fork = fork_supported() and (default if fork is None else fork)
        self._forkserver: ForkServer | None = None
        self._context: zmq.asyncio.Context | None = None
        # Only the allow-listed variables (kernel_env): never the service's settings or its
        # metrics folder (notebook code must not write the service's metrics).
        self._env = kernel_env(env)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="wb-kernels", daemon=True
        )
        self._thread.start()
        self._ready: asyncio.Queue[WarmKernel] | None = None
        self._starting: set[asyncio.Task[None]] = set()
        self._closed = False
        self.call(self._init())

    async def _init(self) -> None:
        self._ready = asyncio.Queue()
        # One ZMQ context (and its I/O thread) for all of this pool's kernels, not two per kernel.
        self._context = zmq.asyncio.Context()
        if self.fork:
            self._template()
        for _ in range(self.size):
            self._spawn()

    def _spawn(self) -> None:
        task = self._loop.create_task(self._start_into_queue())
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _start_into_queue(self) -> None:
        kernel = await self._start_kernel()
        if self._closed or self._ready is None:
            await kernel.discard()
        else:
            await self._ready.put(kernel)
            metrics.warm_kernels(+1)

    def _template(self) -> ForkServer | None:
        """The fork server (started here, on the loop thread), or None to start from scratch."""
        from workbench.runs.errors import ForkServerError
        from workbench.runs.forkserver import ForkServer

        if self._forkserver is not None and self._forkserver.alive():
            return self._forkserver
        if self._forkserver is not None:
            log.warning("the kernel template process died; starting a new one")
            self._forkserver.close()
            self._forkserver = None
        try:
            self._forkserver = ForkServer(self._env, self.kernel_user)
        except (ForkServerError, OSError) as exc:
            log.warning("kernels start from scratch: the template process failed (%s)", exc)
            self.fork = False
        return self._forkserver

    async def _start_kernel(self) -> WarmKernel:
        began = time.monotonic()
        user = self.kernel_user
        # A kernel user's kernel gets a folder of its own: HOME, first working folder,
        # connection file and sockets; it is removed with the kernel (WarmKernel.discard).
        folder = kernel_folder(user) if user is not None else None
        try:
            return await self._start_kernel_in(user, folder, began)
        except BaseException:
            remove_folder(folder)
            raise

    async def _start_kernel_in(
        self, user: KernelUser | None, folder: Path | None, began: float
    ) -> WarmKernel:
        # IPC sockets: local only, no unencrypted TCP port for other users to reach; a
        # unique path prefix per kernel, so kernels started together never share a socket.
        where: dict[str, Any] = {"ip": os.path.join(_ipc_dir(), uuid.uuid4().hex)}
        # A kernel started here (not forked) dies with this process, as the kernel user too
        # (the hook runs after the switch of user); this loop thread lives as long as we do.
        launch: dict[str, Any] = {"env": self._env, "preexec_fn": parent_death_hook()}
        if folder is not None:
            where = {"ip": str(folder / "kernel"), "connection_file": str(folder / "kernel.json")}
            env = {**self._env, **user_env(user, folder)}
            launch = {**launch, "env": env, "cwd": str(folder), **popen_options(user)}
        manager = AsyncKernelManager(
            kernel_name=KERNEL_NAME, transport="ipc", context=self._context, **where
        )
        server = self._template() if self.fork else None
        if server is not None or user is not None:
            from workbench.runs.forkserver import ForkProvisioner, UserProvisioner

            manager.kernel_id = str(uuid.uuid4())
            kind = ForkProvisioner if server is not None else UserProvisioner
            provisioner = kind(
                kernel_id=manager.kernel_id, kernel_spec=manager.kernel_spec, parent=manager
            )
            provisioner.owner = user
            if isinstance(provisioner, ForkProvisioner):
                provisioner.server = server
            manager.provisioner = provisioner
        try:
            await manager.start_kernel(**launch)
            started = utcnow()
            client = manager.client(context=self._context)
            # No heartbeat channel: liveness comes from the process (nbclient asks the
            # manager), and stopping that channel's thread would block the pool's loop.
            client.start_channels(hb=False)
            await client.wait_for_ready(timeout=READY_TIMEOUT)
        except Exception as exc:
            if manager.has_kernel:
                await manager.shutdown_kernel(now=True)
            raise KernelError(f"A kernel could not be started: {exc}") from None
        kernel = WarmKernel(manager, client, started, folder)
        setup = []
        if folder is not None and server is None:  # a forked kernel sealed itself
            setup.append(SEAL_CODE)  # sealed against the kernel user's other kernels
        if self.warmup and server is None:  # a forked kernel has imported it already
            setup.append(WARMUP)
        try:
            if folder is not None:
                seal_folder(folder, manager.connection_file)
            if setup:
                await kernel.run_silently("\n".join(setup))
        except (OSError, KernelError) as exc:
            kernel.folder = None  # removed by _start_kernel
            await kernel.discard()
            raise KernelError(f"A kernel could not be set up: {exc}") from None
        metrics.kernel_started(server is not None, time.monotonic() - began)
        return kernel

    async def acquire(self) -> WarmKernel:
        """A fresh kernel for one run: a warm one if ready, else one started now."""
        if self._ready is None:  # pragma: no cover - set in __init__
            raise KernelError("The kernel pool was not started.")
        while True:
            if self._ready.empty() and not self._starting:
                kernel = await self._start_kernel()
            else:
                kernel = await self._ready.get()
                metrics.warm_kernels(-1)
                if self.replenish:
                    self._spawn()
            if await kernel.manager.is_alive():
                return kernel
            await kernel.discard()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the pool's loop; cancelling the future cancels the coroutine."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.submit(coro).result()

    def discard_later(self, kernel: WarmKernel) -> None:
        """Shut a used kernel down in the background."""
        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(kernel.discard()))

    def close(self) -> None:
        """Shut down every kernel the pool holds and stop its loop."""
        if self._closed:
            return
        self._closed = True

        async def _close() -> None:
            # Let kernels being started finish: they see _closed and discard themselves.
            await asyncio.gather(*self._starting, return_exceptions=True)
            while self._ready is not None and not self._ready.empty():
                metrics.warm_kernels(-1)
                await self._ready.get_nowait().discard()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            await asyncio.gather(*others, return_exceptions=True)

        self.call(_close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        if self._context is not None:
            self._context.destroy(linger=0)
        if self._forkserver is not None:
            self._forkserver.close()

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
