"""Voila's handlers, locked down: access per dashboard, 404 for paths outside a folder,
friendly error pages, and the request-info socket for local kernels only.

Code execution from the browser is refused by Voila's kernel manager, which lets only widget
and kernel-info messages through the kernel websocket (``allowed_message_types``);
:func:`check_execution_refused` keeps that promise checked at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from tornado import web
from voila.request_info_handler import RequestInfoSocketHandler
from voila.static_file_handler import (
    AllowListFileHandler,
    MultiStaticFileHandler,
    TemplateStaticFileHandler,
)
from voila.tornado.handler import TornadoVoilaHandler

from workbench.dashboards import catalog, pages
from workbench.dashboards.auth import Account, WorkbenchIdentityProvider
from workbench.dashboards.tokens import VIEWER_HEADER

__all__ = [
    "ALLOWED_BROWSER_MESSAGES",
    "DashboardHandler",
    "IndexHandler",
    "LocalRequestInfoHandler",
    "NotFoundHandler",
    "SafeFileHandler",
    "SafeStaticHandler",
    "SafeTemplateStaticHandler",
    "check_execution_refused",
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


class DashboardHandler(FriendlyErrors, TornadoVoilaHandler):  # type: ignore[misc]
    """Renders a dashboard for an account that may open it; 404 for anything else.

    The page's kernel gets its viewer through the viewer header, set here and nowhere else
    (the identity provider dropped any the browser sent): Voila copies it into the kernel.
    """

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


class LocalRequestInfoHandler(RequestInfoSocketHandler):  # type: ignore[misc]
    """Hands the request's information (with the viewer token) only to local kernels."""

    async def get(self, *args: Any, **kwargs: Any) -> None:
        try:
            local = ipaddress.ip_address(self.request.remote_ip or "").is_loopback
        except ValueError:
            local = False
        if not local:
            raise web.HTTPError(404)
        await super().get(*args, **kwargs)

    def open(self, kernel_id: str) -> None:
        """The kernel reached its viewer cell: it is warm. A request's information (its
        viewer's login) waiting for this kernel is sent and then forgotten."""
        super().open(kernel_id)
        RequestInfoSocketHandler._cache.pop(kernel_id, None)
        ready = getattr(self.settings.get("kernel_manager"), "kernel_ready", None)
        if ready is not None:
            ready(kernel_id)
