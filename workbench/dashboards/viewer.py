"""Kernel side: who is looking at this dashboard, with exactly that viewer's rights.

The dashboards server checks the viewer's session and hands the page's kernel the viewer's
identity (:class:`~workbench.dashboards.tokens.ViewerIdentity`: user name, role, teams, their
own database login, and with Redis the login's query-cache key) in the viewer header, which
Voila copies into the kernel's environment (a pre-heated kernel receives it when its page is
requested, which :func:`connect` waits for). The kernel holds no secret key and no service
login, so it verifies nothing and looks nothing up: :func:`connect` returns a :class:`Viewer`
holding a :class:`~workbench.app.Workbench` that logs in as the viewer's own PostgreSQL role.
The page's queries are the data API's (``wb.sql``: its pooled ADBC connections of that login,
its query cache, whose stamps are read through that login too), and row-level security shows
that viewer's rows only. The embedded SQLite database is single-user: every viewer sees all.

What does not depend on the viewer (imports) is done before waiting, so a pre-heated kernel
has it ready when the page is requested.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pydantic import SecretStr
from sqlalchemy.exc import SQLAlchemyError
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from workbench.app import Workbench
from workbench.core.config import Settings
from workbench.core.roles import Role
from workbench.dashboards.spare import REQUEST_KEY_ENV, REQUEST_KEY_HEADER
from workbench.dashboards.tokens import VIEWER_ENV, ViewerIdentity
from workbench.data.api import release_connections
from workbench.data.arrow import decimals_as_floats
from workbench.data.cache import cache_for, decode_key
from workbench.data.cache import warm_up as warm_up_cache
from workbench.plugins.manager import get_plugins
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

    def service_health(self) -> dict[str, str]:
        """The services by name, as the dashboards server tells everyone: each readiness
        check of its ``/readyz`` as ``"ok"`` or ``"failing"``, and ``"scheduler"`` as
        ``"running"``, ``"not running"`` (no scheduler beats) or ``"unknown"`` (its
        ``/services``). The page's kernel has no service login to check anything itself."""
        ready = _server_json("readyz")
        if ready is None:
            return {"dashboards server": "failing"}
        health = {
            str(name): "ok" if status == "ok" else "failing"
            for name, status in ready.get("checks", {}).items()
        }
        services = _server_json("services") or {}
        scheduler = services.get("scheduler")
        health["scheduler"] = scheduler if scheduler in ("running", "not running") else "unknown"
        return health

    def close(self) -> None:
        release_connections(self.workbench)
        self.workbench.close()


def _server_json(path: str) -> dict[str, Any] | None:
    """The JSON answer of the dashboards server's ``path`` (an error status's body too), or
    ``None`` when it does not answer: asked at the server's own port, never a request's."""
    base = os.environ.get("VOILA_SERVER_URL", "/")
    url = (
        f"http://{os.environ.get('VOILA_APP_IP', '127.0.0.1')}:"
        f"{os.environ.get('VOILA_APP_PORT', '8866')}{base}{path}"
    )
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            body = json.loads(reply.read())
    except urllib.error.HTTPError as exc:  # 503: not ready, with the same body
        try:
            body = json.loads(exc.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


#: How long a pre-heated kernel waits for its page request before giving up (a day).
REQUEST_WAIT_SECONDS = 86400.0


def _wait_for_page_request() -> None:
    """In a pre-heated kernel, block until a page request hands this kernel its viewer.

    The protocol of Voila's ``wait_for_request`` (one message from ``/voila/query/<kernel
    id>``), with the kernel's secret from the server (:data:`.spare.REQUEST_KEY_ENV`, read
    once) in a header so no other client can take its place, and without importing Voila
    into the kernel, which alone would add over a second to every kernel's warm-up. Of the
    message only the viewer header is taken: the rest would be the browser's request.
    """
    key = os.environ.pop(REQUEST_KEY_ENV, "")
    if os.environ.get("VOILA_PREHEAT", "False") != "True":
        return  # a kernel started for the request already has its viewer
    base = os.environ.get("VOILA_WS_BASE_URL", os.environ.get("VOILA_SERVER_URL", "/"))
    url = (
        f"{os.environ.get('VOILA_WS_PROTOCOL', 'ws')}://"
        f"{os.environ.get('VOILA_APP_IP', '127.0.0.1')}:{os.environ.get('VOILA_APP_PORT', '8866')}"
        f"{base}voila/query/{os.environ.get('VOILA_KERNEL_ID', '')}"
    )
    received: list[str] = []

    async def receive() -> None:
        request = HTTPRequest(url, headers={REQUEST_KEY_HEADER: key}, connect_timeout=10)
        connection = await websocket_connect(request)
        message = await asyncio.wait_for(connection.read_message(), REQUEST_WAIT_SECONDS)
        connection.close()
        if isinstance(message, str):
            received.append(message)

    # The kernel's own loop is busy running this cell: wait on a loop of our own.
    thread = threading.Thread(target=asyncio.run, args=(receive(),), daemon=True)
    thread.start()
    thread.join()
    if received:
        handed = json.loads(received[0])
        if isinstance(handed, dict) and isinstance(handed.get(VIEWER_ENV), str):
            os.environ[VIEWER_ENV] = handed[VIEWER_ENV]


def _viewer(identity: ViewerIdentity, base: Settings) -> Viewer:
    """The viewer's workbench from what the server handed over, on ``base``'s knobs."""
    own_settings = base.model_copy(
        update={
            "database_url": SecretStr(identity.database_url),
            "redis_url": SecretStr(identity.redis_url) if identity.redis_url else None,
            "secret_key": None,
        }
    )
    own = Workbench(own_settings, identity.database_url)
    cache_for(
        own, key=decode_key(identity.cache_key)
    )  # Redis only with the login's key; the stamps through the login
    return Viewer(identity.username, identity.role, identity.teams, own)


def connect(settings: Settings | None = None) -> Viewer:
    """The viewer of this page; :class:`InvalidViewerError` outside a served dashboard.

    ``settings`` (default: none of the kernel's environment) gives the non-secret knobs (pool
    sizes, timeouts); the database, Redis and key are the viewer's, as handed over.
    """
    # The first query, cached query and recorded frame would otherwise import their readers
    # (the ADBC driver, the Redis client) after the request: a fifth of a second or more.
    # Nothing of the kernel's own environment or working folder: no ``.env`` file is read.
    base = settings if settings is not None else Settings(_env_file=None)
    _warm_up(base)
    _wait_for_page_request()
    identity = ViewerIdentity.load(os.environ.pop(VIEWER_ENV, None))
    return _viewer(identity, base)


def _warm_up(settings: Settings) -> None:
    """Import what the page's first queries need, before any viewer is known."""
    # The viewer's engine (psycopg under SQLAlchemy) and the data API's backends.
    import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401

    import workbench.data.arrow
    import workbench.data.backends.base
    import workbench.data.backends.postgres  # noqa: F401

    warm_up_cache(redis=True)
    warm_up_results()
    # The process-wide plugins (they do not depend on the login): the viewer's first
    # connection would otherwise load them after the request, a tenth of a second.
    get_plugins(settings)
