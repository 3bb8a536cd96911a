"""`workbench dashboards serve`: Voila configured by Workbench.

Voila serves the dashboard folder with: Workbench sign-in (:mod:`.auth`), the locked-down
handlers (:mod:`.lockdown`), Workbench's page template and header (:mod:`.frame`), code
hidden and tracebacks off, and pre-heated kernels. A pre-heated kernel runs a dashboard up
to its viewer cell (imports, widgets, layout) before anyone asks; the page request hands it
the viewer and only the per-viewer cells run then (:func:`.viewer.connect`). SIGINT and
SIGTERM stop the server and shut down every kernel, pooled ones included; any kernel process
still alive is then killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import psutil
from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.services.kernels.handlers import KernelHandler
from jupyter_server.services.kernels.kernelmanager import (
    AsyncMappingKernelManager,
    ServerKernelManager,
)
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.ioloop import IOLoop
from tornado.log import access_log
from traitlets.config import Config
from voila.app import Voila
from voila.request_info_handler import RequestInfoSocketHandler
from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler
from voila.static_file_handler import (
    AllowListFileHandler,
    MultiStaticFileHandler,
    TemplateStaticFileHandler,
)
from voila.tornado.contentshandler import VoilaContentsHandler
from voila.tornado.handler import TornadoVoilaHandler
from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler
from voila.tornado.treehandler import TornadoVoilaTreeHandler

from workbench.app import Workbench
from workbench.core.roles import Role
from workbench.dashboards import catalog, frame, lockdown, outputs, spare
from workbench.dashboards.auth import WorkbenchIdentityProvider
from workbench.dashboards.health import (
    READINESS_SETTING,
    SCHEDULER_SETTING,
    SchedulerBeat,
    probe_handlers,
)
from workbench.dashboards.tokens import VIEWER_HEADER, derive_key
from workbench.ops import metrics
from workbench.ops.probes import Readiness, service_readiness
from workbench.ops.processes import parent_death_hook
from workbench.ops.tracking import init_tracking
from workbench.runs import sandbox
from workbench.runs.sandbox import KernelUser

__all__ = ["ServeOptions", "SpareKernelManager", "WorkbenchVoila", "build_app", "serve"]

#: The npm name of Workbench's JupyterLab extension (labextension/package.json), which the
#: dashboards do not load.
LAB_EXTENSION = "workbench-lab"

log = logging.getLogger(__name__)

#: Seconds an unused page's kernel may idle before it is shut down (closed tabs, scripts).
CULL_IDLE_SECONDS = 600
#: Seconds after which the next pool kernel starts even if the previous one is not warm yet.
WARM_TIMEOUT = 15.0
#: Seconds a pool kernel waits for the pages being rendered before it warms up anyway.
QUIET_WAIT = 2.0


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8866
    pool_size: int = 4
    """Pre-heated kernels kept ready per dashboard; 0 starts a kernel per page view."""
    folders: tuple[Path, ...] = ()


class SpareKernelManager(ServerKernelManager):
    """Starts a kernel in the server's spare process when there is one (see :mod:`.spare`),
    and then the next spare, so every kernel finds its imports done when it starts.

    Every kernel starts with :func:`.spare.kernel_environment` only. With a kernel user
    (:data:`kernel_user`, from WORKBENCH_KERNEL_USER) it runs as that user in a folder of its
    own (:func:`workbench.runs.sandbox.kernel_folder`: its HOME, working folder, connection
    file and IPC sockets; the spare's folder when it becomes the kernel), removed with it.

    A pre-heated kernel also gets a secret of its own (:attr:`request_key`, in its environment
    as :data:`.spare.REQUEST_KEY_ENV`) to receive its viewer on ``/voila/query``. The address
    it reaches the server at is the server's own port, never the page request's ``Host``.
    """

    #: The OS user dashboard kernels run as (set by :func:`build_app`); ``None``: the server's.
    kernel_user: ClassVar[KernelUser | None] = None

    request_key: str | None = None
    """The pre-heated kernel's secret for its request socket, until it has its viewer."""
    workbench_owner: str | None = None
    """The account whose page started or took this kernel (:func:`.lockdown.claim_kernel`)."""

    _folder: Path | None = None
    _reserved: spare.Spare | None = None

    async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
        self._reserved = spare.reserve()
        user = self.kernel_user
        if user is not None:
            reserved = self._reserved
            folder = reserved.folder if reserved is not None and reserved.folder else None
            self._folder = folder or sandbox.kernel_folder(user)
            self.connection_file = str(self._folder / "kernel.json")
            self.ip = str(self._folder / "kernel")
            kw["cwd"] = str(self._folder)  # the dashboards folder may be closed to the user
        cmd, launch = await super()._async_pre_start_kernel(**kw)
        if user is not None:
            os.chown(self.connection_file, user.uid, user.gid)  # written 0600 by the server
            launch.update(sandbox.popen_options(user))
        return cmd, launch

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        # Nothing of the server's environment reaches a kernel but the allow-listed part.
        kw["env"] = spare.kernel_environment(kw.get("env") or os.environ)
        port = getattr(getattr(self.parent, "parent", None), "port", None)  # the Voila app's
        if port:
            kw["env"]["VOILA_APP_PORT"] = str(port)  # a request's Host may name another
        if kw["env"].get("VOILA_PREHEAT") == "True":
            self.request_key = secrets.token_urlsafe(32)
            kw["env"][spare.REQUEST_KEY_ENV] = self.request_key
        if self._folder is not None:
            kw["env"].update(sandbox.user_env(self.kernel_user, self._folder))
        reserved, self._reserved = self._reserved, None
        waiting = spare.take(kernel_cmd, reserved)
        provisioner: Any = self.provisioner
        if waiting is None or not hasattr(provisioner, "process"):
            if waiting is not None:
                waiting.close()
            # It dies with the server, even after kill -9 (armed after the change of user).
            kw["preexec_fn"] = parent_death_hook()
            await super()._async_launch_kernel(kernel_cmd, **kw)
            return
        waiting.hand_over(kernel_cmd, kw.get("env") or {}, kw.get("cwd"))
        provisioner.process = waiting.process
        provisioner.pid = waiting.process.pid
        provisioner.pgid = os.getpgid(waiting.process.pid)
        provisioner.cwd = kw.get("cwd") or os.getcwd()
        self._reconcile_connection_info(provisioner.connection_info)
        spare.start(self.kernel_user)  # the next kernel's imports start now, in the background
        log.info("Kernel %s runs in a spare process that had its imports done.", self.kernel_id)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            sandbox.remove_folder(self._folder)


class OrderlyKernelManager(AsyncMappingKernelManager):
    """Warms pool kernels one at a time, in the background of the pages being served.

    A pool kernel's start-up (imports, the page up to its viewer cell) costs a few seconds of
    CPU. Warming several at once, as after a burst of viewers, would take that CPU from the
    pages being rendered, so the next pool kernel starts only when the previous one is ready
    (it asked for its request, see :meth:`kernel_ready`) or :data:`WARM_TIMEOUT` passed, and
    only once no page is being rendered (:meth:`rendering`; at most :data:`QUIET_WAIT`).
    Kernels for a page request (the pool was empty) start at once. Once the server stops
    (:meth:`shutdown_all`), no pool kernel starts any more.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self._turn = asyncio.Condition()
        self._busy = False
        self._closing = False
        self._rendering = 0
        self._warming: dict[str, asyncio.TimerHandle] = {}

    @contextlib.asynccontextmanager
    async def rendering(self) -> AsyncIterator[None]:
        """While a page is rendered, pool kernels wait to warm: its cells come first."""
        self._rendering += 1
        try:
            yield
        finally:
            self._rendering -= 1
            async with self._turn:
                self._turn.notify_all()

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:  # type: ignore[override]
        pooled = kwargs.get("env", {}).get("VOILA_PREHEAT") == "True"
        if not pooled:
            started: str = await super().start_kernel(*args, **kwargs)
            return started
        async with self._turn:
            await self._turn.wait_for(lambda: self._closing or not self._busy)
            self._busy = True  # this start's turn, the pages' wait included
            if self._rendering and not self._closing:
                waited = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._turn.wait_for(lambda: self._closing or not self._rendering),
                        QUIET_WAIT,
                    )
                log.info(
                    "A pool kernel waited %.2f s for the pages being rendered.",
                    time.monotonic() - waited,
                )
            if self._closing:  # also while it waited for the pages
                self._busy = False
                raise RuntimeError("the dashboard server is stopping")
        try:
            kernel_id: str = await super().start_kernel(*args, **kwargs)
        except BaseException:
            await self._next()
            raise
        loop = asyncio.get_running_loop()
        self._warming[kernel_id] = loop.call_later(WARM_TIMEOUT, self.kernel_ready, kernel_id)
        return kernel_id

    async def _next(self) -> None:
        async with self._turn:
            self._busy = False
            self._turn.notify_all()

    def kernel_ready(self, kernel_id: str) -> None:
        """A pool kernel is warm (or gave up): let the next one start."""
        timer = self._warming.pop(kernel_id, None)
        if timer is None:
            return
        timer.cancel()
        asyncio.get_running_loop().create_task(self._next())
        log.info("Pre-heated kernel %s is ready.", kernel_id)

    async def shutdown_all(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        async with self._turn:
            self._closing = True
            self._turn.notify_all()
        await super().shutdown_all(*args, **kwargs)


class MetricsHandler(lockdown.FriendlyErrors):
    """``GET /metrics``: this server's Prometheus metrics, for a signed-in admin only; anyone
    else gets the 404 of an address that does not exist."""

    @allow_unauthenticated
    async def get(self) -> None:
        provider = self.identity_provider
        account = None
        if isinstance(provider, WorkbenchIdentityProvider):
            account = provider.account(self)
        if account is None or account.role != Role.ADMIN:
            raise web.HTTPError(404)
        body, content_type = await asyncio.to_thread(metrics.exposition)  # reads the database
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-store")
        self.finish(body)


def _log_request(handler: web.RequestHandler) -> None:
    """Tornado's access-log line for a request, and its latency in the metrics (labelled by
    the handler's class, never by its address)."""
    status = handler.get_status()
    seconds = handler.request.request_time()
    metrics.dashboard_request(type(handler).__name__, status, seconds)
    if status < 400:
        write = access_log.info
    elif status < 500:
        write = access_log.warning
    else:
        write = access_log.error
    request = handler.request
    write(
        "%d %s %s (%s) %.2fms",
        status, request.method, request.uri, request.remote_ip, 1000.0 * seconds,
    )  # fmt: skip


_REPLACED: dict[type, type] = {
    TornadoVoilaHandler: frame.FramedDashboardHandler,
    TornadoVoilaTreeHandler: lockdown.TreeRedirectHandler,
    AllowListFileHandler: lockdown.SafeFileHandler,
    MultiStaticFileHandler: lockdown.SafeStaticHandler,
    TemplateStaticFileHandler: lockdown.SafeTemplateStaticHandler,
    RequestInfoSocketHandler: lockdown.LocalRequestInfoHandler,
    KernelHandler: lockdown.OwnKernelHandler,
    VoilaKernelWebsocketHandler: lockdown.OwnKernelSocketHandler,
    VoilaShutdownKernelHandler: lockdown.OwnShutdownHandler,
}


class WorkbenchVoila(Voila):  # type: ignore[misc]
    """Voila with Workbench's sign-in, locked-down handlers and a clean shutdown."""

    workbench: Workbench
    readiness: Readiness

    def setup_template_dirs(self) -> None:
        """Voila's templates, with Workbench's page template found first (:mod:`.frame`)."""
        super().setup_template_dirs()
        found: list[str] = list(self.template_paths)  # type: ignore[has-type]
        self.template_paths = frame.first_template_paths(found)

    def init_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = super().init_settings()
        self.contents_manager.log.addFilter(frame.TrustNoise())
        settings[SCHEDULER_SETTING] = SchedulerBeat(self.workbench)
        settings[READINESS_SETTING] = self.readiness
        lockdown.check_execution_refused(self.kernel_manager)
        settings["workbench_dashboards_root"] = self.root_dir
        settings["default_handler_class"] = lockdown.NotFoundHandler
        settings["log_function"] = _log_request
        return settings

    def init_handlers(self) -> list[Any]:
        handlers: list[Any] = [
            *probe_handlers(self.server_url),
            (url_path_join(self.server_url, outputs.OUTPUT_PATH), outputs.RunOutputHandler),
            (url_path_join(self.server_url, "metrics"), MetricsHandler),
        ]
        for spec in super().init_handlers():
            pattern, handler = spec[0], spec[1]
            if handler is VoilaContentsHandler:
                continue  # the folder listing API: the index replaces it
            if handler is TornadoVoilaTreeHandler and pattern == self.server_url:
                handlers.append((pattern, lockdown.IndexHandler, *spec[2:]))
                continue
            handlers.append((pattern, _REPLACED.get(handler, handler), *spec[2:]))
        return handlers

    def listen(self) -> None:
        self._unwatch = metrics.watch_database(self.workbench)  # queue gauges on /metrics
        loop = IOLoop.current()

        def _stop(*_: Any) -> None:
            self.readiness.drain()  # /readyz is 503 from now on, while the kernels stop
            loop.add_callback_from_signal(loop.stop)

        self.readiness.prime()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _stop)
        super().listen()

    def stop(self) -> None:
        """Shut down every kernel (pooled and pending too), then kill what is left."""
        try:
            IOLoop.current().run_sync(self._shutdown_kernels, timeout=30)
        except Exception:  # a kernel that will not stop is killed below
            log.warning("Some dashboard kernels did not shut down cleanly; killing them.")
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
        shutil.rmtree(self.connection_dir, ignore_errors=True)
        self.readiness.close()
        getattr(self, "_unwatch", lambda: None)()
        self.workbench.close()
        log.info("Dashboard server stopped.")

    async def _shutdown_kernels(self) -> None:
        await self.kernel_manager.shutdown_all(now=True)


def build_app(workbench: Workbench, options: ServeOptions) -> WorkbenchVoila:
    """The configured, not yet started Voila application."""
    folders = catalog.dashboard_folders(workbench.settings, list(options.folders))
    root = catalog.serving_root(folders)
    config = Config()
    config.Voila.ip = options.host
    config.Voila.port = options.port
    config.Voila.port_retries = 0
    config.Voila.open_browser = False
    config.Voila.root_dir = str(root)
    config.Voila.identity_provider_class = WorkbenchIdentityProvider
    config.Voila.cookie_secret = derive_key(workbench.settings, "dashboard-session")
    # CSP, nosniff, referrer policy and framing on every answer of jupyter_server's handlers.
    from workbench.dashboards.headers import SECURITY_HEADERS

    config.Voila.tornado_settings = {"headers": dict(SECURITY_HEADERS)}
    # The JupyterLab extension is the analyst's (notebooks, runs, jobs): not a dashboard's.
    config.VoilaConfiguration.extension_denylist = [LAB_EXTENSION]
    config.VoilaConfiguration.show_tracebacks = False
    config.VoilaConfiguration.strip_sources = True
    config.VoilaConfiguration.allow_template_override = "NO"
    config.VoilaConfiguration.allow_theme_override = "NO"
    config.VoilaConfiguration.http_header_envs = [VIEWER_HEADER]
    config.VoilaConfiguration.multi_kernel_manager_class = OrderlyKernelManager
    config.VoilaConfiguration.preheat_kernel = options.pool_size > 0
    config.VoilaConfiguration.default_pool_size = options.pool_size
    config.VoilaKernelManager.fill_delay = 0
    config.VoilaKernelManager.kernel_pools_config = {
        "default": {"pool_size": options.pool_size},
        **{
            d.name: {"pool_size": d.pool_size}
            for d in catalog.list_dashboards(root)
            if d.pool_size is not None
        },
    }
    # Kernels listen on IPC sockets in the server's private connection folder, not on TCP
    # ports that every local user could reach.
    config.KernelManager.transport = "ipc"
    config.MappingKernelManager.kernel_manager_class = (
        f"{SpareKernelManager.__module__}.{SpareKernelManager.__qualname__}"
    )
    config.MappingKernelManager.cull_idle_timeout = CULL_IDLE_SECONDS
    config.MappingKernelManager.cull_interval = 60
    config.MappingKernelManager.cull_connected = False
    SpareKernelManager.kernel_user = sandbox.kernel_user(workbench.settings)
    app = WorkbenchVoila(config=config)
    app.workbench = workbench
    app.readiness = service_readiness(workbench.settings)
    app.initialize([])
    return app


def serve(workbench: Workbench, options: ServeOptions) -> None:
    """Serve the dashboards until SIGINT or SIGTERM."""
    init_tracking(workbench.settings, service="dashboards")  # with WORKBENCH_SENTRY_DSN only
    sandbox.require_boundary(workbench.settings, "dashboards server")
    app = build_app(workbench, options)
    app.start()
