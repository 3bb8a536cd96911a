"""Voila's handlers, locked down: access per dashboard, 404 for paths outside a folder,
friendly error pages, kernels that are their viewer's, and the request-info socket for the
kernel holding that kernel's secret only.

Code execution from the browser is refused by Voila's kernel manager, which lets only widget
and kernel-info messages through the kernel websocket (``allowed_message_types``);
:func:`check_execution_refused` keeps that promise checked at start-up.

A page's kernel belongs to the account whose page request started it or took it from the
pool (:class:`DashboardHandler` claims it, :func:`claim_kernel`). Every route that takes a
kernel id (the kernel API, its websocket, Voila's shutdown) answers anyone else, and everyone
for a pool kernel nobody has taken yet, with the 404 of a missing kernel. A pre-heated kernel
receives its viewer on ``/voila/query/<id>`` only with the secret the server put in that
kernel's environment (:data:`workbench.dashboards.spare.REQUEST_KEY_ENV`), and receives the
viewer header alone, none of the browser's request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.services.kernels.handlers import KernelHandler
from tornado import web
from voila.request_info_handler import RequestInfoSocketHandler
from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler
from voila.static_file_handler import (
    AllowListFileHandler,
    MultiStaticFileHandler,
    TemplateStaticFileHandler,
)
from voila.tornado.handler import TornadoVoilaHandler
from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler

from workbench.dashboards import catalog, pages
from workbench.dashboards.auth import Account, WorkbenchIdentityProvider
from workbench.dashboards.spare import REQUEST_KEY_HEADER
from workbench.dashboards.tokens import VIEWER_ENV, VIEWER_HEADER

__all__ = [
    "ALLOWED_BROWSER_MESSAGES",
    "DashboardHandler",
    "IndexHandler",
    "LocalRequestInfoHandler",
    "NotFoundHandler",
    "OwnKernelHandler",
    "OwnKernelSocketHandler",
    "OwnShutdownHandler",
    "SafeFileHandler",
    "SafeStaticHandler",
    "SafeTemplateStaticHandler",
    "check_execution_refused",
    "claim_kernel",
    "kernel_owner",
]

#: What a browser may send to a dashboard's kernel: widgets talk, nothing executes.
ALLOWED_BROWSER_MESSAGES = frozenset(
    {
        "comm_open",
        "comm_close",
        "comm_msg",
        "comm_info_request",
        "kernel_info_request",
        "shutdown_request",
    }
)


def check_execution_refused(kernel_manager: Any) -> None:
    """Refuse to serve if the kernel manager would pass code from the browser to a kernel."""
    allowed = set(getattr(kernel_manager, "allowed_message_types", None) or ())
    if not allowed or not allowed <= ALLOWED_BROWSER_MESSAGES:
        raise RuntimeError("the dashboard kernels would accept code from the browser")


def _kernel(manager: Any, kernel_id: str) -> Any | None:
    """The kernel's own manager (one per kernel, gone with it), or ``None``."""
    try:
        return manager.get_kernel(kernel_id)
    except KeyError:
        return None


def claim_kernel(manager: Any, kernel_id: str, user_id: str) -> None:
    """Make ``kernel_id`` the kernel of the account ``user_id`` (its page started or took it)."""
    kernel = _kernel(manager, kernel_id)
    if kernel is not None:
        kernel.workbench_owner = user_id


def kernel_owner(manager: Any, kernel_id: str) -> str | None:
    """The account whose kernel ``kernel_id`` is: ``None`` for a missing or unclaimed one."""
    owner = getattr(_kernel(manager, kernel_id), "workbench_owner", None)
    return owner if isinstance(owner, str) else None


def _account(handler: JupyterHandler) -> Account | None:
    provider = handler.identity_provider
    if isinstance(provider, WorkbenchIdentityProvider):
        return provider.account(handler)
    return None  # pragma: no cover - wiring


class FriendlyErrors(JupyterHandler):
    """Error pages that say what happened, never how (no tracebacks, no paths)."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        account = _account(self)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(
            pages.error_page(
                status_code,
                username=account.username if account else "",
                base_url=self.base_url,
                xsrf=self.xsrf_form_html() if account else "",
            )
        )


def _root(handler: JupyterHandler) -> Path:
    return Path(handler.settings["workbench_dashboards_root"])


class IndexHandler(FriendlyErrors):
    """The list of dashboards the signed-in account may open."""

    def initialize(self, **_voila: Any) -> None:
        """Takes (and ignores) the arguments Voila gives its folder view."""

    @web.authenticated
    async def get(self) -> None:
        account = _account(self)
        if account is None:  # pragma: no cover - @authenticated redirected already
            raise web.HTTPError(403)
        links = [
            pages.DashboardLink(
                url=f"{self.base_url}voila/render/{d.name}",
                title=d.title,
                description=d.description,
            )
            for d in catalog.list_dashboards(_root(self))
            if d.allows(account.role)
        ]
        self.finish(
            pages.index_page(
                links,
                username=account.username,
                base_url=self.base_url,
                xsrf=self.xsrf_form_html(),
            )
        )


class TreeRedirectHandler(JupyterHandler):
    """Voila's folder view is replaced by the index."""

    def initialize(self, **_voila: Any) -> None:
        """Takes (and ignores) the arguments Voila gives its folder view."""

    @web.authenticated
    def get(self, path: str = "") -> None:
        self.redirect(self.base_url)


class _ClaimingManager:
    """The kernel manager as one page request sees it: the kernel the request starts, or
    takes from the pool, is claimed for the request's account before a byte of the page is
    sent (and before a pre-heated kernel is handed its viewer)."""

    def __init__(self, manager: Any, user_id: str) -> None:
        self._manager = manager
        self._user_id = user_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:
        kernel_id = str(await self._manager.start_kernel(*args, **kwargs))
        claim_kernel(self._manager, kernel_id, self._user_id)
        return kernel_id

    async def get_rendered_notebook(self, *args: Any, **kwargs: Any) -> Any:
        task, rendered, kernel_id = await self._manager.get_rendered_notebook(*args, **kwargs)
        claim_kernel(self._manager, kernel_id, self._user_id)
        return task, rendered, kernel_id


class DashboardHandler(FriendlyErrors, TornadoVoilaHandler):  # type: ignore[misc]
    """Renders a dashboard for an account that may open it; 404 for anything else.

    The page's kernel gets its viewer through the viewer header, set here and nowhere else
    (the identity provider dropped any the browser sent): Voila copies it into the kernel.
    The kernel the page starts or takes from the pool becomes the account's
    (:class:`_ClaimingManager`).
    """

    _claimant: str | None = None

    @property
    def kernel_manager(self) -> Any:
        manager = self.settings["kernel_manager"]
        if self._claimant is None:
            return manager
        return _ClaimingManager(manager, self._claimant)

    async def _pool_started(self, name: str) -> None:
        """Right after start-up, wait for the dashboard's first pool kernel to start rather
        than start another kernel beside it (Voila uses the pool once one has started)."""
        manager = self.kernel_manager
        pending = getattr(manager, "_pools", {}).get(name) or []
        if pending and name not in getattr(manager, "notebook_data", {}):
            with contextlib.suppress(Exception):
                await pending[0]

    @web.authenticated
    async def get(self, path: str | None = None) -> None:
        account = _account(self)
        dashboard = catalog.find(_root(self), path or "")
        if account is None or dashboard is None:
            raise web.HTTPError(404)
        if not dashboard.allows(account.role):
            raise web.HTTPError(403)
        provider = self.identity_provider
        assert isinstance(provider, WorkbenchIdentityProvider)  # noqa: S101 (as _account found)
        identity = await asyncio.to_thread(provider.viewer_identity, account)
        if identity is None:
            raise web.HTTPError(403)
        self.request.headers[VIEWER_HEADER] = identity.dump()
        self._claimant = account.user_id
        await self._pool_started(dashboard.name)
        rendering = getattr(self.kernel_manager, "rendering", None)
        async with rendering() if rendering is not None else contextlib.nullcontext():
            await TornadoVoilaHandler.get(self, path)

    def redirect_to_file(self, path: str) -> None:
        raise web.HTTPError(404)


class _NotFoundOnRefusal:
    """Static handlers answer 404 for anything they refuse (traversal, not allowed)."""

    async def get(self, path: str, include_body: bool = True) -> None:
        try:
            await super().get(path, include_body)  # type: ignore[misc]
        except web.HTTPError as exc:
            if exc.status_code == 403:
                raise web.HTTPError(404) from None
            raise
        except (AssertionError, ValueError):  # Voila's template files assert the path's shape
            raise web.HTTPError(404) from None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        handler: Any = self
        handler.set_header("Content-Type", "text/html; charset=UTF-8")
        handler.finish(pages.error_page(status_code))


class SafeFileHandler(_NotFoundOnRefusal, AllowListFileHandler):  # type: ignore[misc]
    pass


class SafeStaticHandler(_NotFoundOnRefusal, MultiStaticFileHandler):  # type: ignore[misc]
    pass


class SafeTemplateStaticHandler(_NotFoundOnRefusal, TemplateStaticFileHandler):  # type: ignore[misc]
    pass


class NotFoundHandler(FriendlyErrors):
    """Every address nothing else answers."""

    def prepare(self) -> None:  # type: ignore[override]
        raise web.HTTPError(404)


class _OwnKernelOnly:
    """A route taking a kernel id answers the kernel's owner only; anyone else (signed in or
    not), and everyone for a pool kernel nobody has taken, gets the 404 of a missing kernel.
    Checked before anything else (sign-in, XSRF), so no answer tells a kernel exists."""

    def _kernel_id(self) -> str:
        handler: Any = self
        kwargs: dict[str, str] = handler.path_kwargs
        return kwargs.get("kernel_id") or (handler.path_args or [""])[0]

    async def prepare(self) -> None:
        handler: Any = self
        account = _account(handler)
        owner = kernel_owner(handler.settings["kernel_manager"], self._kernel_id())
        if account is None or owner is None or owner != account.user_id:
            raise web.HTTPError(404)
        prepared = super().prepare()  # type: ignore[misc]
        if isinstance(prepared, Awaitable):
            await prepared


class OwnKernelHandler(_OwnKernelOnly, KernelHandler):  # type: ignore[misc]
    """``/api/kernels/<id>`` (its model, DELETE): for the kernel's owner only."""


class OwnKernelSocketHandler(_OwnKernelOnly, VoilaKernelWebsocketHandler):  # type: ignore[misc]
    """``/api/kernels/<id>/channels``: the page's widgets, for the kernel's owner only."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # A refusal comes before the sign-in, which jupyter_server's error page needs.
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(pages.error_page(status_code))


class OwnShutdownHandler(_OwnKernelOnly, VoilaShutdownKernelHandler):  # type: ignore[misc]
    """``/voila/api/shutdown/<id>`` (a closed page's kernel): for the kernel's owner only."""


class LocalRequestInfoHandler(RequestInfoSocketHandler):  # type: ignore[misc]
    """Hands a page request's viewer to the pre-heated kernel waiting for it, and to no one
    else: a local connection carrying that kernel's secret (:data:`REQUEST_KEY_HEADER`).

    The secret is made when the kernel starts, put in its environment only and forgotten
    once the kernel has its viewer. Any other client gets 404 before the socket opens, so it
    never takes the kernel's place. Of the request's variables only the viewer header (which
    the server set) is sent: the query string, host and other headers are the browser's.
    """

    _kernel_id: str = ""

    def _expected_key(self, kernel_id: str) -> str | None:
        manager = self.settings.get("kernel_manager")
        key = getattr(_kernel(manager, kernel_id), "request_key", None)
        return key if isinstance(key, str) and key else None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        try:
            local = ipaddress.ip_address(self.request.remote_ip or "").is_loopback
        except ValueError:
            local = False
        kernel_id = str(kwargs.get("kernel_id") or (args[0] if args else ""))
        expected = self._expected_key(kernel_id)
        given = self.request.headers.get(REQUEST_KEY_HEADER, "").encode()
        if not local or expected is None or not hmac.compare_digest(given, expected.encode()):
            raise web.HTTPError(404)
        self._kernel_id = kernel_id
        await super().get(*args, **kwargs)

    def write_message(self, message: Any, binary: bool = False) -> Any:
        """The viewer header alone; once sent, the kernel's secret is spent."""
        if isinstance(message, dict):
            message = {VIEWER_ENV: message[VIEWER_ENV]} if VIEWER_ENV in message else {}
        sent = super().write_message(message, binary)
        kernel = _kernel(self.settings.get("kernel_manager"), self._kernel_id)
        if kernel is not None:
            kernel.request_key = None
        return sent

    def open(self, kernel_id: str) -> None:
        """The kernel reached its viewer cell: it is warm. A request's information (its
        viewer's login) waiting for this kernel is sent and then forgotten."""
        super().open(kernel_id)
        RequestInfoSocketHandler._cache.pop(kernel_id, None)
        ready = getattr(self.settings.get("kernel_manager"), "kernel_ready", None)
        if ready is not None:
            ready(kernel_id)

    def on_close(self) -> None:
        """Forget this socket only (Voila's own would drop another kernel's when this one
        was never registered)."""
        waiters = RequestInfoSocketHandler._waiters
        if waiters.get(self._kernel_id) is self:
            del waiters[self._kernel_id]
