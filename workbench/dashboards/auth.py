"""Sign-in for dashboards: Workbench accounts, a signed session cookie, the viewer header.

:class:`WorkbenchIdentityProvider` is a jupyter_server IdentityProvider, so every Voila handler
(pages, kernel websockets, API) sees the signed-in account or sends the browser to the login
page. It drops any ``X-Workbench-Viewer`` header a browser sends; the dashboard handler sets
it, on the page request only, to the viewer's identity (:meth:`WorkbenchIdentityProvider.
viewer_identity`), which Voila copies into the page's kernel: that is how a dashboard learns
who is looking, and the only login it gets (see :mod:`workbench.dashboards.viewer`).

A session cookie names its account's session generation (:class:`~workbench.dashboards.tokens.
Claim`); every authenticated request reads the account's row by its key (active? which
generation?), so signing out, a new password, new database credentials or disabling end every
session at once, on every server process. Sign-in is throttled per client address
(:mod:`workbench.dashboards.throttle`) as well as per account.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.auth.identity import IdentityProvider
from jupyter_server.auth.identity import User as JupyterUser
from jupyter_server.base.handlers import JupyterHandler
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from tornado import web

from workbench.accounts.errors import AuthenticationError
from workbench.accounts.users import authenticate, end_sessions
from workbench.core.errors import WorkbenchError
from workbench.dashboards import headers, pages
from workbench.dashboards.errors import SignInThrottledError
from workbench.dashboards.throttle import AddressThrottle
from workbench.dashboards.tokens import (
    SESSION_COOKIE,
    VIEWER_HEADER,
    Claim,
    ViewerIdentity,
    identity_of,
)
from workbench.db.failures import driver_message
from workbench.db.models import Role, User
from workbench.ops import metrics

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = [
    "WRONG_CREDENTIALS",
    "Account",
    "LoginHandler",
    "LogoutHandler",
    "WorkbenchIdentityProvider",
    "safe_next",
]

log = logging.getLogger(__name__)

#: The one answer to a wrong user name, a wrong password, a locked or a disabled account, so a
#: sign-in page tells nobody which accounts exist (the hub's sign-in says the same).
WRONG_CREDENTIALS = "Wrong user name or password."
#: A session lasts a working day at most; the account's row is read on every request.
SESSION_DAYS = 0.5
#: How long the identity handed to a page's kernel (teams, login) is reused for one session
#: generation; a new generation (new credentials, disabled) always reads it again.
RECHECK_SECONDS = 60.0
#: Where the per-request account (or its absence) is kept on a handler, so that the identity
#: provider and the handlers that ask again in the same request read the row once.
_MEMO = "_workbench_account"


@dataclass(frozen=True)
class Account:
    """What the server needs to know about a signed-in viewer."""

    user_id: str
    username: str
    role: Role
    active: bool
    generation: int = 0
    """The account's session generation (``users.session_generation``) when it was read."""


class _Accounts:
    """Account look-ups by id: one primary-key read of four columns per request, so no
    server process honours a session its account no longer has. It costs a median 0.46 ms on
    a local PostgreSQL (pool pre-ping included) and 0.23 ms on SQLite, on a loaded two-core
    development machine."""

    def __init__(self, workbench: Workbench) -> None:
        self.workbench = workbench
        self._identities: dict[str, tuple[float, int, ViewerIdentity | None]] = {}
        self._lock = threading.Lock()

    def get(self, user_id: str) -> Account | None:
        """The account's current row, or ``None`` for an id that names no account."""
        try:
            key = uuid.UUID(user_id)
        except ValueError:
            return None
        query = select(User.username, User.role, User.is_active, User.session_generation)
        try:
            with self.workbench.engine.connect() as connection:
                row = connection.execute(query.where(User.id == key)).first()
        except SQLAlchemyError as exc:  # no account can be checked: nobody is let in
            log.warning("accounts cannot be read, answering 503: %s", driver_message(exc))
            raise web.HTTPError(503, "the database is not answering") from None
        if row is None:
            return None
        return Account(
            str(key), row.username, Role(row.role), row.is_active, row.session_generation
        )

    def identity(self, account: Account) -> ViewerIdentity | None:
        """What the kernel of this account's page gets (reused for :data:`RECHECK_SECONDS`
        within one session generation), or ``None`` when the account may not open dashboards
        (disabled, or no database login)."""
        now = time.monotonic()
        with self._lock:
            hit = self._identities.get(account.user_id)
        if hit is not None and hit[1] == account.generation and now - hit[0] < RECHECK_SECONDS:
            return hit[2]
        identity = None
        with self.workbench.session() as session:
            user = session.get(User, uuid.UUID(account.user_id))
            if user is not None and user.is_active:
                try:
                    identity = identity_of(self.workbench, user)
                except WorkbenchError as exc:  # no login yet: say so in the log, not the page
                    log.warning("%s cannot open dashboards: %s", user.username, exc)
        with self._lock:
            self._identities[account.user_id] = (now, account.generation, identity)
        return identity


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

    @property
    def throttle(self) -> AddressThrottle:
        """The failed sign-ins of each client address, for this server process."""
        app: Any = self.parent
        found: AddressThrottle | None = getattr(app, "_workbench_throttle", None)
        if found is None:
            found = AddressThrottle()
            app._workbench_throttle = found
        return found

    def get_handlers(self) -> list[tuple[str, object]]:
        return [(r"/login", LoginHandler), (r"/logout", LogoutHandler)]

    def account(self, handler: web.RequestHandler) -> Account | None:
        """The active account of the request's session cookie, if any: the account's row is
        read once per request, and a cookie of an earlier session generation is refused."""
        memo: tuple[Account | None] | None = getattr(handler, _MEMO, None)
        if memo is not None:
            return memo[0]
        account = self._check(handler)
        setattr(handler, _MEMO, (account,))
        return account

    def _check(self, handler: web.RequestHandler) -> Account | None:
        raw = handler.get_secure_cookie(SESSION_COOKIE, max_age_days=SESSION_DAYS)
        if not raw:
            return None
        try:
            claim = Claim.load(raw)
        except (ValueError, KeyError, TypeError):
            return None
        account = self.accounts.get(claim.user_id)
        if (
            account is None
            or not account.active
            or account.username != claim.username
            or account.generation != claim.generation
        ):
            return None
        return account

    def viewer_identity(self, account: Account) -> ViewerIdentity | None:
        """The identity for the kernel of ``account``'s page (see :meth:`_Accounts.identity`)."""
        return self.accounts.identity(account)

    def get_user(self, handler: web.RequestHandler) -> JupyterUser | None:
        # The browser never chooses who it is: drop any viewer header it sent.
        handler.request.headers.pop(VIEWER_HEADER, None)
        headers.add_transport_headers(handler)
        account = self.account(handler)
        if account is None:
            return None
        return JupyterUser(username=account.username, name=account.username)

    def start_session(self, handler: web.RequestHandler, user: User) -> None:
        """Sign ``user`` in on this browser, with the account's current session generation."""
        claim = Claim(str(user.id), user.username, user.session_generation)
        handler.set_secure_cookie(
            SESSION_COOKIE,
            claim.dump(),
            expires_days=None,
            httponly=True,
            samesite="Lax",
            secure=handler.request.protocol == "https",
            path=handler.settings.get("base_url", "/"),
        )

    async def end_session(self, handler: web.RequestHandler) -> None:
        """Sign out: every session of the account ends (on every browser and server), and
        this browser's cookie is cleared."""
        account = self.account(handler)
        if account is not None:
            bench = self.workbench

            def bump() -> None:
                with bench.session(writing=True) as session, session.begin():
                    end_sessions(session, uuid.UUID(account.user_id))

            await asyncio.to_thread(bump)
            setattr(handler, _MEMO, (None,))
        handler.clear_cookie(SESSION_COOKIE, path=handler.settings.get("base_url", "/"))


def _provider(handler: JupyterHandler) -> WorkbenchIdentityProvider:
    provider = handler.identity_provider
    if not isinstance(provider, WorkbenchIdentityProvider):  # pragma: no cover - wiring
        raise web.HTTPError(500)
    return provider


def safe_next(target: str | None, base_url: str = "/") -> str:
    r"""``target`` when it is a path of this server under ``base_url``, else ``base_url``.

    A browser reads ``/\t/host``, ``/\host`` or `` //host`` as another site (it drops tabs
    and new lines, turns backslashes into slashes, trims spaces), so a target with any control,
    format or space character, any backslash, a scheme or a host is refused whole, never
    cleaned up; so is one that does not start with the base URL, or starts with ``//``.
    """
    if not target or "\\" in target or target.startswith("//"):
        return base_url
    if any(unicodedata.category(char)[0] in "CZ" for char in target):
        return base_url  # controls (tab, CR, LF, NUL), zero-width and space characters
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/"):
        return base_url
    if not target.startswith(base_url):
        return base_url
    return target


def _safe_next(handler: JupyterHandler, target: str | None) -> str:
    return safe_next(target, handler.base_url)


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
        address = self.request.remote_ip or ""
        try:  # before any password is checked: a refused address costs no argon2 work
            provider.throttle.check(address)
        except SignInThrottledError as exc:
            metrics.sign_in(success=False)
            self.set_status(429)
            self.set_header("Retry-After", str(exc.retry_after))
            self.finish(self._page(str(exc), username))
            return

        def check() -> User:
            with provider.workbench.session() as session:
                return authenticate(session, username, password)

        try:
            user = await asyncio.to_thread(check)
        except AuthenticationError:
            provider.throttle.failed(address)
            metrics.sign_in(success=False)
            self.set_status(401)
            self.finish(self._page(WRONG_CREDENTIALS, username))
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
        await _provider(self).end_session(self)
        self.redirect(self.base_url + "login")
