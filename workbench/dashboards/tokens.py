"""What the dashboard server hands its kernels and signs for browsers: the viewer, the session.

The session cookie is signed (HMAC-SHA256, with a timestamp) by tornado's signed-value format
under a key derived from the workbench secret key, which only the server holds.

A page's kernel holds no key and no service login, so it cannot verify anything the server
signs: the server (which has checked the session) hands it the viewer's identity itself, as
:class:`ViewerIdentity` in the ``X-Workbench-Viewer`` request header that Voila copies into the
kernel (its environment, or the ``/voila/query`` message of a pre-heated kernel). The server
drops any such header a browser sends and sets it only on the page request it renders; no log
line or error page of the server shows request headers.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workbench.core.config import Settings
from workbench.core.crypto import hkdf_key, require_secret_key
from workbench.core.roles import Role
from workbench.dashboards.errors import InvalidViewerError

if TYPE_CHECKING:
    from workbench.app import Workbench
    from workbench.db.models import User

__all__ = [
    "SESSION_COOKIE",
    "VIEWER_ENV",
    "VIEWER_HEADER",
    "Claim",
    "ViewerIdentity",
    "derive_key",
    "identity_of",
]

SESSION_COOKIE = "workbench_session"
#: The request header (set by the server, never trusted from the browser) that carries the
#: viewer's identity into the kernel's environment, under the CGI name below.
VIEWER_HEADER = "X-Workbench-Viewer"
VIEWER_ENV = "HTTP_X_WORKBENCH_VIEWER"


@dataclass(frozen=True)
class Claim:
    """Who a session speaks for, and the account's session generation when it was signed.

    The server honours a claim only while ``generation`` is the user's current
    ``users.session_generation``: signing out, a new password, new database credentials and
    disabling raise it, which ends every session signed before.
    """

    user_id: str
    username: str
    generation: int

    def dump(self) -> str:
        data = {"id": self.user_id, "name": self.username, "gen": self.generation}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def load(cls, raw: bytes | str) -> Claim:
        """The claim in a verified cookie value; ``ValueError``/``KeyError`` for another shape
        (such as a cookie signed before sessions had generations)."""
        data = json.loads(raw)
        generation = data["gen"]
        if not isinstance(generation, int) or isinstance(generation, bool):
            raise ValueError("the session's generation is not a number")
        return cls(user_id=str(data["id"]), username=str(data["name"]), generation=generation)


@dataclass(frozen=True)
class ViewerIdentity:
    """Everything a page's kernel gets of its viewer, and nothing of the service's."""

    username: str
    role: Role
    teams: tuple[str, ...]
    database_url: str = ""
    """The viewer's own login (team mode), or the embedded database's file (single user)."""
    redis_url: str | None = None
    cache_key: str | None = None
    """The login's query-cache key (:func:`workbench.data.cache.encode_key`), with Redis."""

    def __repr__(self) -> str:  # never the login's password or the cache key
        return f"ViewerIdentity({self.username!r}, {self.role.value!r}, {self.teams!r})"

    def dump(self) -> str:
        """The header value: URL-safe base64 of JSON (a header is one line of ASCII)."""
        data = {
            "user": self.username,
            "role": self.role.value,
            "teams": list(self.teams),
            "url": self.database_url,
            "redis": self.redis_url,
            "cache_key": self.cache_key,
        }
        return base64.urlsafe_b64encode(json.dumps(data).encode("utf-8")).decode("ascii")

    @classmethod
    def load(cls, raw: str | None) -> ViewerIdentity:
        """The identity in a header value; :class:`InvalidViewerError` for none or garbage."""
        if not raw:
            raise InvalidViewerError()
        try:
            data = json.loads(base64.urlsafe_b64decode(raw.encode("ascii")))
            return cls(
                username=str(data["user"]),
                role=Role(data["role"]),
                teams=tuple(str(t) for t in data["teams"]),
                database_url=str(data["url"]),
                redis_url=str(data["redis"]) if data.get("redis") else None,
                cache_key=str(data["cache_key"]) if data.get("cache_key") else None,
            )
        except (binascii.Error, UnicodeError, ValueError, KeyError, TypeError):
            raise InvalidViewerError(
                "This dashboard's viewer could not be read; reload the page."
            ) from None


def derive_key(settings: Settings, purpose: str) -> bytes:
    """A 32-byte key for ``purpose``, derived from the secret key with HKDF-SHA256."""
    key = require_secret_key(settings, "dashboard sessions cannot be signed")
    return hkdf_key(key, purpose, salt=b"workbench-dashboards-v1")


def identity_of(workbench: Workbench, user: User) -> ViewerIdentity:
    """Server side: the identity to hand the kernel of ``user``'s page, read with the service's
    login and key (the user's teams, their own login's URL and cache key)."""
    from workbench.accounts.teams import teams_of
    from workbench.data.cache import encode_key, login_cache_key
    from workbench.db.identity_connect import user_database_url

    settings = workbench.settings
    redis_url = settings.effective_redis_url()
    teams: tuple[str, ...] = ()
    if workbench.engine.dialect.name != "postgresql":
        url, login = workbench.database_url, ""
    else:
        with workbench.session() as session:
            teams = tuple(teams_of(session, user))
        rendered = user_database_url(settings, user, workbench.database_url)
        url, login = rendered.render_as_string(hide_password=False), str(rendered.username)
    key = None
    if redis_url:
        secret = require_secret_key(settings, "a dashboard's query cache cannot be keyed")
        key = encode_key(login_cache_key(secret, login))
    return ViewerIdentity(
        username=user.username,
        role=user.role,
        teams=teams,
        database_url=url,
        redis_url=redis_url,
        cache_key=key,
    )
