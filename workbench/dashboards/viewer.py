"""Kernel side: who is looking at this dashboard, with exactly that viewer's rights.

The server signs a short-lived viewer token for each page request and Voila copies it into
the kernel's environment (a pre-heated kernel receives it when its page is requested, which
:func:`connect` waits for). :func:`connect` verifies the token and returns a :class:`Viewer`
holding a :class:`~workbench.app.Workbench` that logs in as the viewer's own PostgreSQL role
(:func:`user_database_url`): the page's queries are the data API's (``wb.sql``: its pooled
ADBC connections of that login, its query cache), and row-level security shows that viewer's
rows only. The embedded SQLite database is single-user: every viewer sees all of it.

Everything that does not depend on the viewer (imports, the service's connection pool) is
done before waiting, so a pre-heated kernel has it ready when the page is requested.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy.exc import SQLAlchemyError
from tornado.websocket import websocket_connect

from workbench.accounts.teams import teams_of
from workbench.app import Workbench
from workbench.core.config import Settings, load_settings
from workbench.dashboards.errors import InvalidViewerError
from workbench.dashboards.tokens import VIEWER_ENV, verify_viewer
from workbench.data.api import release_connections
from workbench.data.api import warm_up as warm_up_data
from workbench.data.arrow import decimals_as_floats
from workbench.data.cache import cache_for
from workbench.data.cache import warm_up as warm_up_cache
from workbench.db.identity_connect import user_database_url
from workbench.db.models import Role, User
from workbench.runs.results import RecordedRun, latest_scheduled_results
from workbench.runs.results import warm_up as warm_up_results

__all__ = ["Viewer", "connect"]


@dataclass
class Viewer:
    """The signed-in viewer of a dashboard, with a workbench that logs in as them."""

    username: str
    role: Role
    teams: tuple[str, ...]
    workbench: Workbench = field(repr=False)
    """A workbench logging in as the viewer: the page's queries and the runs it reads."""
    service: Workbench = field(repr=False)
    """The service's own workbench: reads the tables' last writes for the query cache
    (never data rows for the page)."""

    def sql(self, query: str, cache: float | None = None, **params: Any) -> pd.DataFrame:
        """``wb.sql`` as this viewer (``:name`` parameters, ``cache=seconds``).

        The data API on the viewer's workbench: pooled connections of the viewer's login (a
        page's queries share one), and the query cache, whose entries are that login's alone
        and are dropped by a write to a table the query reads. Numbers come back as floats
        (``numeric`` too, as :func:`pandas.read_sql_query` gives them), which pages compute
        and chart with.
        """
        return decimals_as_floats(self.workbench.sql(query, cache, **params))

    def recorded(
        self, notebook_name: str, names: Sequence[str], **params: Any
    ) -> RecordedRun | None:
        """The newest results a scheduled run of ``notebook_name`` recorded with ``params``,
        when they are exactly this viewer's data: ``None`` otherwise (query live instead).

        Runs are read with the viewer's own login, so row-level security shows only their
        teams' runs; results are used only for a viewer of exactly one team who is not an
        admin (an admin's or a multi-team viewer's live rows span teams, which no single
        team's run computed). The embedded SQLite database has one user: any run is theirs.
        """
        single_user = self.workbench.engine.dialect.name != "postgresql"
        if not single_user and (self.role == Role.ADMIN or len(self.teams) != 1):
            return None
        try:
            return latest_scheduled_results(
                notebook_name, names, workbench=self.workbench, **params
            )
        except SQLAlchemyError:
            return None  # results are a shortcut: the live queries still answer

    def close(self) -> None:
        release_connections(self.workbench)
        self.workbench.close()
        self.service.close()


#: How long a pre-heated kernel waits for its page request before giving up (a day).
REQUEST_WAIT_SECONDS = 86400.0


def _wait_for_page_request() -> None:
    """In a pre-heated kernel, block until a page request hands this kernel its viewer.

    The same protocol as Voila's ``wait_for_request`` (one message with the request's
    variables from ``/voila/query/<kernel id>``), without importing Voila into the kernel,
    which alone would add over a second to every kernel's warm-up.
    """
    if os.environ.get("VOILA_PREHEAT", "False") != "True":
        return  # a kernel started for the request already has the request's variables
    base = os.environ.get("VOILA_WS_BASE_URL", os.environ.get("VOILA_SERVER_URL", "/"))
    url = (
        f"{os.environ.get('VOILA_WS_PROTOCOL', 'ws')}://"
        f"{os.environ.get('VOILA_APP_IP', '127.0.0.1')}:{os.environ.get('VOILA_APP_PORT', '8866')}"
        f"{base}voila/query/{os.environ.get('VOILA_KERNEL_ID', '')}"
    )
    received: list[str] = []

    async def receive() -> None:
        connection = await websocket_connect(url, connect_timeout=10)
        message = await asyncio.wait_for(connection.read_message(), REQUEST_WAIT_SECONDS)
        connection.close()
        if isinstance(message, str):
            received.append(message)

    # The kernel's own loop is busy running this cell: wait on a loop of our own.
    thread = threading.Thread(target=asyncio.run, args=(receive(),), daemon=True)
    thread.start()
    thread.join()
    if received:
        os.environ.update({str(k): str(v) for k, v in json.loads(received[0]).items()})


def _identity(owner: Workbench, user_id: str, username: str) -> Viewer:
    with owner.session() as session:
        user = session.get(User, uuid.UUID(user_id))
        if user is None or not user.is_active or user.username != username:
            raise InvalidViewerError("This account can no longer open dashboards.")
        if owner.engine.dialect.name != "postgresql":
            return Viewer(user.username, user.role, (), owner, owner)
        url = user_database_url(owner.settings, user).render_as_string(hide_password=False)
        teams = tuple(teams_of(session, user))
        own = Workbench(owner.settings, url)
        # Row-level security can hide a table's datasets row from the viewer's login (another
        # team's table whose rows they may read), so the cache reads the last writes through
        # the service: any wb.write to a table a query reads refreshes the page.
        cache_for(own, owner.engine)
        return Viewer(user.username, user.role, teams, own, owner)


def connect(settings: Settings | None = None) -> Viewer:
    """The viewer of this page; :class:`InvalidViewerError` outside a served dashboard."""
    settings = settings or load_settings()
    owner = Workbench(settings)
    with owner.engine.connect():
        pass  # warm the service's pool before the request arrives
    # The first query, cached query and recorded frame would otherwise import their readers
    # (the ADBC driver, the Redis client) after the request: a fifth of a second or more.
    warm_up_data(owner)
    warm_up_cache(settings.effective_redis_url())
    warm_up_results()
    _wait_for_page_request()
    try:
        claim = verify_viewer(settings, os.environ.get(VIEWER_ENV))
        viewer = _identity(owner, claim.user_id, claim.username)
    except BaseException:
        owner.close()
        raise
    return viewer
