"""Signed values shared by the dashboard server and its kernels: the session and the viewer.

Both are signed (HMAC-SHA256, with a timestamp) by tornado's signed-value format under keys
derived from the workbench secret key, one key per purpose, so a viewer token can never be
used as a session cookie or the other way round.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tornado.web import create_signed_value, decode_signed_value

from workbench.core.config import Settings
from workbench.core.crypto import hkdf_key, require_secret_key
from workbench.dashboards.errors import InvalidViewerError

__all__ = [
    "SESSION_COOKIE",
    "VIEWER_ENV",
    "VIEWER_HEADER",
    "VIEWER_TOKEN_SECONDS",
    "Claim",
    "derive_key",
    "sign_viewer",
    "verify_viewer",
]

SESSION_COOKIE = "workbench_session"
#: The request header (set by the server, never trusted from the browser) that carries the
#: viewer token into the kernel's environment, under the CGI name below.
VIEWER_HEADER = "X-Workbench-Viewer"
VIEWER_ENV = "HTTP_X_WORKBENCH_VIEWER"
#: A viewer token only has to live from the page request until its kernel reads it.
VIEWER_TOKEN_SECONDS = 120


@dataclass(frozen=True)
class Claim:
    """Who a session or a viewer token speaks for."""

    user_id: str
    username: str

    def dump(self) -> str:
        return json.dumps({"id": self.user_id, "name": self.username}, sort_keys=True)

    @classmethod
    def load(cls, raw: bytes | str) -> Claim:
        data = json.loads(raw)
        return cls(user_id=str(data["id"]), username=str(data["name"]))


def derive_key(settings: Settings, purpose: str) -> bytes:
    """A 32-byte key for ``purpose``, derived from the secret key with HKDF-SHA256."""
    key = require_secret_key(settings, "dashboard sessions cannot be signed")
    return hkdf_key(key, purpose, salt=b"workbench-dashboards-v1")


def sign_viewer(settings: Settings, claim: Claim) -> str:
    """A short-lived token naming the viewer, for the kernel that renders their page."""
    value = create_signed_value(derive_key(settings, "viewer"), "viewer", claim.dump())
    return value.decode("ascii")


def verify_viewer(settings: Settings, token: str | None) -> Claim:
    """The viewer a token names, or :class:`InvalidViewerError` if forged or expired."""
    if not token:
        raise InvalidViewerError()
    raw = decode_signed_value(
        derive_key(settings, "viewer"),
        "viewer",
        token,
        max_age_days=VIEWER_TOKEN_SECONDS / 86400,
    )
    if raw is None:
        raise InvalidViewerError(
            "The viewer token of this dashboard is invalid or expired; reload the page."
        )
    return Claim.load(raw)
