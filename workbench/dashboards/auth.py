"""Sign-in for dashboards: Workbench accounts, a signed session cookie, the viewer header.

:class:`WorkbenchIdentityProvider` is a jupyter_server IdentityProvider, so every Voila handler
(pages, kernel websockets, API) sees the signed-in account or sends the browser to the login
page. It drops any ``X-Workbench-Viewer`` header a browser sends; the dashboard handler sets
it, on the page request only, to the viewer's identity (:meth:`WorkbenchIdentityProvider.
viewer_identity`), which Voila copies into the page's kernel: that is how a dashboard learns
who is looking, and the only login it gets (see :mod:`workbench.dashboards.viewer`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.auth.identity import IdentityProvider
from jupyter_server.auth.identity import User as JupyterUser
from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from workbench.accounts.errors import AuthenticationError
from workbench.accounts.users import authenticate
from workbench.core.errors import WorkbenchError
from workbench.dashboards import pages
from workbench.dashboards.tokens import (
    SESSION_COOKIE,
    VIEWER_HEADER,
    Claim,
    ViewerIdentity,
    identity_of,
)
from workbench.db.models import Role, User
from workbench.ops import metrics

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = ["Account", "LoginHandler", "LogoutHandler", "WorkbenchIdentityProvider"]

log = logging.getLogger(__name__)

#: A session lasts a working day; the account is re-checked (disabled? role?) every minute.
SESSION_DAYS = 0.5
RECHECK_SECONDS = 60.0


@dataclass(frozen=True)
class Account:
    """What the server needs to know about a signed-in viewer."""

    user_id: str
    username: str
    role: Role
    active: bool


class _Accounts:
    """Account look-ups by id, cached briefly so pages and websockets cost no query each."""

    def __init__(self, workbench: Workbench) -> None:
        self.workbench = workbench
        self._known: dict[str, tuple[float, Account | None]] = {}
        self._identities: dict[str, tuple[float, ViewerIdentity | None]] = {}
        self._lock = threading.Lock()

    def get(self, user_id: str) -> Account | None:
        now = time.monotonic()
        with self._lock:
            hit = self._known.get(user_id)
        if hit is not None and now - hit[0] < RECHECK_SECONDS:
            return hit[1]
        account = self._load(user_id)
        with self._lock:
            self._known[user_id] = (now, account)
        return account

    def _load(self, user_id: str) -> Account | None:
        try:
            key = uuid.UUID(user_id)
        except ValueError:
            return None
        with self.workbench.session() as session:
            user = session.get(User, key)
            if user is None:
                return None
            return Account(str(user.id), user.username, user.role, user.is_active)

    def identity(self, user_id: str) -> ViewerIdentity | None:
        """What the kernel of this user's page gets (kept as long as an account look-up), or
        ``None`` when the account may not open dashboards (disabled, or no database login)."""
        now = time.monotonic()
        with self._lock:
            hit = self._identities.get(user_id)
        if hit is not None and now - hit[0] < RECHECK_SECONDS:
            return hit[1]
        identity = None
        with self.workbench.session() as session:
            user = session.get(User, uuid.UUID(user_id))
            if user is not None and user.is_active:
                try:
                    identity = identity_of(self.workbench, user)
                except WorkbenchError as exc:  # no login yet: say so in the log, not the page
                    log.warning("%s cannot open dashboards: %s", user.username, exc)
        with self._lock:
            self._identities[user_id] = (now, identity)
        return identity

    def remember(self, user: User) -> Account:
        account = Account(str(user.id), user.username, user.role, user.is_active)
        with self._lock:
            self._known[account.user_id] = (time.monotonic(), account)
        return account


class WorkbenchIdentityProvider(IdentityProvider):
    """Workbench accounts for Voila: cookie sessions, login and logout pages."""

    @property
    def auth_enabled(self) -> bool:
        return True

    @property
    def login_available(self) -> bool:
        return True

    @property
    def logout_available(self) -> bool:
        return True

    @property
    def workbench(self) -> Workbench:
        app: Any = self.parent  # the Voila application, which holds the workbench
        bench: Workbench = app.workbench
        return bench

    @property
    def accounts(self) -> _Accounts:
        app: Any = self.parent
        found: _Accounts | None = getattr(app, "_workbench_accounts", None)
        if found is None:
            found = _Accounts(self.workbench)
            app._workbench_accounts = found
        return found

    def get_handlers(self) -> list[tuple[str, object]]:
        return [(r"/login", LoginHandler), (r"/logout", LogoutHandler)]

    def account(self, handler: web.RequestHandler) -> Account | None:
        """The active account of the request's session cookie, if any."""
        raw = handler.get_secure_cookie(SESSION_COOKIE, max_age_days=SESSION_DAYS)
        if not raw:
            return None
        try:
            claim = Claim.load(raw)
        except (ValueError, KeyError):
            return None
        account = self.accounts.get(claim.user_id)
        if account is None or not account.active or account.username != claim.username:
            return None
        return account

    def viewer_identity(self, account: Account) -> ViewerIdentity | None:
        """The identity for the kernel of ``account``'s page (see :meth:`_Accounts.identity`)."""
        return self.accounts.identity(account.user_id)

    def get_user(self, handler: web.RequestHandler) -> JupyterUser | None:
        # The browser never chooses who it is: drop any viewer header it sent.
        handler.request.headers.pop(VIEWER_HEADER, None)
        account = self.account(handler)
        if account is None:
            return None
        return JupyterUser(username=account.username, name=account.username)

    def start_session(self, handler: web.RequestHandler, user: User) -> None:
        account = self.accounts.remember(user)
        handler.set_secure_cookie(
            SESSION_COOKIE,
            Claim(account.user_id, account.username).dump(),
            expires_days=None,
            httponly=True,
            samesite="Lax",
            secure=handler.request.protocol == "https",
            path=handler.settings.get("base_url", "/"),
        )

    def end_session(self, handler: web.RequestHandler) -> None:
        handler.clear_cookie(SESSION_COOKIE, path=handler.settings.get("base_url", "/"))


def _provider(handler: JupyterHandler) -> WorkbenchIdentityProvider:
    provider = handler.identity_provider
    if not isinstance(provider, WorkbenchIdentityProvider):  # pragma: no cover - wiring
        raise web.HTTPError(500)
    return provider


def _safe_next(handler: JupyterHandler, target: str | None) -> str:
    """Only redirect to a path on this server (no ``//host`` or ``scheme:``)."""
    base: str = handler.base_url
    if not target or not target.startswith(base) or target.startswith("//") or "\\" in target:
        return base
    return target


class _PlainErrors(JupyterHandler):
    """The shared error page (e.g. 403 for a missing XSRF token), never a traceback."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(pages.error_page(status_code, base_url=self.base_url))


class LoginHandler(_PlainErrors):
    """The login page: a form for a Workbench user name and password."""

    def _page(self, error: str | None = None, username: str = "") -> str:
        return pages.login_page(
            action=self.request.uri or "/login",
            xsrf=self.xsrf_form_html(),
            error=error,
            username=username,
        )

    @allow_unauthenticated
    async def get(self) -> None:
        if self.current_user:
            self.redirect(_safe_next(self, self.get_argument("next", None)))
            return
        self.finish(self._page())

    @allow_unauthenticated
    async def post(self) -> None:
        username = self.get_body_argument("username", "").strip()
        password = self.get_body_argument("password", "")
        provider = _provider(self)

        def check() -> User:
            with provider.workbench.session() as session:
                return authenticate(session, username, password)

        try:
            user = await asyncio.to_thread(check)
        except AuthenticationError:
            metrics.sign_in(success=False)
            self.set_status(401)
            self.finish(self._page("Wrong user name or password.", username))
            return
        metrics.sign_in(success=True)
        provider.start_session(self, user)
        self.redirect(_safe_next(self, self.get_argument("next", None)))


class LogoutHandler(_PlainErrors):
    """Signing out is a posted form with the XSRF token (checked before :meth:`post` runs), so
    another site cannot sign a viewer out; a plain GET only asks whether to sign out."""

    @allow_unauthenticated
    async def get(self) -> None:
        account = _provider(self).account(self)
        if account is None:
            self.redirect(self.base_url + "login")
            return
        self.finish(
            pages.logout_page(
                username=account.username, base_url=self.base_url, xsrf=self.xsrf_form_html()
            )
        )

    @allow_unauthenticated
    async def post(self) -> None:
        _provider(self).end_session(self)
        self.redirect(self.base_url + "login")
