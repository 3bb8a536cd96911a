"""A run's stored HTML rendering, served to the accounts that may see that run.

The operations dashboard links failed runs to ``/runs/<run id>/output``. Only analysts and
admins may open it, and the run is looked up with the account's own database login, so
row-level security decides which runs exist for them (their teams' runs; every run for an
admin); anything else is 404, the same answer as for a run that does not exist. The only
thing taken from the address is the run's UUID: the file read is the run's own output folder
(from its database row) and the fixed file name of its HTML rendering.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import select, text
from tornado import web

from workbench.dashboards.auth import Account, WorkbenchIdentityProvider
from workbench.dashboards.lockdown import FriendlyErrors
from workbench.db.identity_connect import user_engine
from workbench.db.models import Role, User
from workbench.db.models import Run as RunRow
from workbench.runs.errors import StorageError
from workbench.runs.storage import HTML_NAME, read_output, run_location

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = ["OUTPUT_PATH", "RunOutputHandler", "output_url", "run_output_html"]

#: The address pattern under the server's base URL (a UUID, nothing else: with its dashes,
#: or as the 32 hex digits SQLite stores and a query of the embedded database returns).
OUTPUT_PATH = r"runs/([0-9a-fA-F]{32}|[0-9a-fA-F-]{36})/output"
#: Who may read run outputs (viewers see dashboards, not notebooks).
READERS = frozenset({Role.ADMIN, Role.ANALYST})
#: The page is an analyst's notebook: its scripts run in a sandbox with an origin of its own,
#: so they can neither read the dashboards nor act for the viewer.
SANDBOX = "sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox"


def output_url(base_url: str, run_id: uuid.UUID | str) -> str:
    """Where the dashboard server shows run ``run_id``'s output."""
    return f"{base_url}runs/{uuid.UUID(str(run_id))}/output"


def _visible(owner: Workbench, user: User, run_id: uuid.UUID) -> bool:
    """Whether ``user``'s own login can see run ``run_id`` (row-level security decides)."""
    if owner.engine.dialect.name != "postgresql":  # one user: every run is theirs
        with owner.session() as session:
            return session.scalar(select(RunRow.id).where(RunRow.id == run_id)) is not None
    engine = user_engine(owner.settings, user, owner.database_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT id FROM runs WHERE id = :id"), {"id": run_id}
            ).scalar()
            return found is not None
    finally:
        engine.dispose()


def run_output_html(owner: Workbench, account: Account, run_id: uuid.UUID) -> bytes | None:
    """The run's HTML rendering for ``account``, or ``None`` (not allowed, no such run, or
    no rendering stored)."""
    if account.role not in READERS:
        return None
    with owner.session() as session:
        user = session.get(User, uuid.UUID(account.user_id))
        if user is None or not user.is_active or user.role not in READERS:
            return None
        session.expunge(user)
    if not _visible(owner, user, run_id):
        return None
    # The location is the service's storage base and the run id, never the row's output_uri.
    try:
        return read_output(run_location(owner.settings, run_id), HTML_NAME)
    except StorageError:
        return None


class RunOutputHandler(FriendlyErrors):
    """``GET /runs/<run id>/output``: the run's HTML rendering, or 404."""

    @web.authenticated
    async def get(self, run_id: str) -> None:
        provider = self.identity_provider
        if not isinstance(provider, WorkbenchIdentityProvider):  # pragma: no cover - wiring
            raise web.HTTPError(404)
        account = provider.account(self)
        try:
            key = uuid.UUID(run_id)
        except ValueError:
            raise web.HTTPError(404) from None
        if account is None or account.role not in READERS:
            raise web.HTTPError(404)
        page = await asyncio.to_thread(run_output_html, provider.workbench, account, key)
        if page is None:
            raise web.HTTPError(404)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Content-Security-Policy", SANDBOX)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "private, no-store")
        self.finish(page)
