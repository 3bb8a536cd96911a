"""A dashboard's kernel is its viewer's: another signed-in viewer holding its id finds nothing.

A real `workbench dashboards serve` on PostgreSQL (one pre-heated kernel for ``owned.ipynb``,
none for ``fresh.ipynb``) shows viewers of two teams a page whose widget holds their rows.
Viewer B, given A's kernel id (it is in A's page and in the server's log), gets the 404 of a
missing kernel from the kernel API, the kernel's websocket and Voila's shutdown route, and A's
kernel goes on serving A. A pre-heated kernel nobody has claimed is nobody's. The request-info
socket a pre-heated kernel waits on (``/voila/query/<id>``) answers only the kernel holding
that kernel's secret: a local client without it gets nothing, and the page it waits for still
renders for its viewer. Nothing of the browser's request (query string, headers, host) reaches
a page's kernel but the viewer header the server sets.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tests import services
from tests.e2e.world import Server, World, build_world, drop_roles, start_server
from tests.integration.test_dashboards_hostile import login
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.dashboards import lockdown
from workbench.dashboards.server import ServeOptions, build_app
from workbench.dashboards.spare import REQUEST_KEY_ENV, REQUEST_KEY_HEADER
from workbench.dashboards.tokens import VIEWER_HEADER

pytestmark = pytest.mark.postgres

#: A page whose label widget holds the viewer's rows, and which shows its kernel's environment.
CELLS = [
    "import json, os\nimport ipywidgets as w\nfrom workbench.dashboards import viewer",
    f'print("KEY-BEFORE", os.environ.get("{REQUEST_KEY_ENV}") or "none")',
    "me = viewer.connect()",
    """origins = ",".join(sorted(me.sql("SELECT DISTINCT origin FROM flights")["origin"]))
print("ORIGINS", origins)
w.Label(value="WIDGET-ORIGINS " + origins)""",
    'print("KERNEL-ENV", json.dumps(dict(os.environ), sort_keys=True))',
]
OWNED = "owned.ipynb"
FRESH = "fresh.ipynb"
KERNEL_ID = re.compile(r'"kernelId":\s*"([0-9a-f-]{36})"')
READY = re.compile(r"Pre-heated kernel ([0-9a-f-]{36}) is ready")
USED = re.compile(r"Using pre-heated kernel: ([0-9a-f-]{36})")


def write_dashboard(folder: Path, name: str, **workbench: Any) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    notebook.metadata["workbench"] = {"title": name, **workbench}
    nbformat.write(notebook, folder / name)


@pytest.fixture(scope="module")
def scene(
    pg_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[World, Server]]:
    home = tmp_path_factory.mktemp("home")
    with services.temporary_database(template=pg_template) as name:
        world = build_world(services.sqlalchemy_url(name), home)
        try:
            folder = tmp_path_factory.mktemp("owned")
            write_dashboard(folder, OWNED)
            write_dashboard(folder, FRESH, pool_size=0)  # a kernel started for each page
            server = start_server(
                world, tmp_path_factory.mktemp("serve"), pool_size=1, folder=folder
            )
            try:
                yield world, server
            finally:
                assert server.stop() == []
        finally:
            drop_roles(world)


def origins_of(world: World, team: str) -> str:
    return ",".join(sorted(set(world.rows_of(team)["origin"])))


def page(server: Server, session: requests.Session, name: str = OWNED, **kw: Any) -> str:
    kw.setdefault("timeout", 120)
    reply = session.get(server.base + f"voila/render/{name}", **kw)
    reply.raise_for_status()
    return html.unescape(reply.text)


def kernel_of(text: str) -> str:
    found = KERNEL_ID.findall(text)
    assert len(found) == 1, found
    return str(found[0])


def kernel_env(text: str) -> dict[str, str]:
    start = text.index("KERNEL-ENV ") + len("KERNEL-ENV ")
    env: dict[str, str] = json.JSONDecoder().raw_decode(text, start)[0]
    return env


def cookies(session: requests.Session) -> str:
    return "; ".join(f"{k}={v}" for k, v in session.cookies.items())


def xsrf(session: requests.Session) -> dict[str, str]:
    return {"X-XSRFToken": session.cookies.get("_xsrf") or ""}


def ws_url(server: Server, path: str) -> str:
    return server.base.replace("http://", "ws://") + path


def _message(msg_type: str, content: dict[str, Any]) -> str:
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "session": uuid.uuid4().hex,
        "username": "test",
        "version": "5.3",
        "date": datetime.now(UTC).isoformat(),
    }
    return json.dumps(
        {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": "shell",
        }
    )


async def _hang_up(connection: WebSocketClientConnection) -> None:
    """Close ``connection`` and wait (5 s at most) for the server's answer, then drop the socket:
    a client socket still open when its event loop ends is only reclaimed by the garbage
    collector, whose ResourceWarning then fails whichever test happens to be running."""
    protocol = connection.protocol
    connection.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while await connection.read_message() is not None:
                pass
    if protocol is not None and protocol.stream is not None:
        protocol.stream.close()


async def _replies(
    connection: WebSocketClientConnection, msg_type: str, seconds: float
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            raw = await asyncio.wait_for(connection.read_message(), deadline - time.monotonic())
        except TimeoutError:
            break
        if raw is None:
            break
        message = json.loads(raw)
        if (
            message.get("msg_type") == msg_type
            or message.get("header", {}).get("msg_type") == msg_type
        ):
            found.append(message)
            if msg_type == "comm_info_reply":
                break
    return found


async def _widget_state(server: Server, kernel_id: str, session: requests.Session) -> str:
    """Everything the kernel's widgets say when asked over its websocket (as a browser asks)."""
    request = HTTPRequest(
        ws_url(server, f"api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"),
        headers={"Cookie": cookies(session)},
        connect_timeout=30,
    )
    connection = await websocket_connect(request)
    try:
        connection.write_message(_message("comm_info_request", {"target_name": "jupyter.widget"}))
        info = await _replies(connection, "comm_info_reply", 30)
        comms = info[0]["content"]["comms"] if info else {}
        for comm_id in comms:
            content = {"comm_id": comm_id, "data": {"method": "request_state"}}
            connection.write_message(_message("comm_msg", content))
        updates = await _replies(connection, "comm_msg", 5)
        return json.dumps([u.get("content", {}) for u in updates])
    finally:
        await _hang_up(connection)


def widget_state(server: Server, kernel_id: str, session: requests.Session) -> str | int:
    """What the kernel's widgets hold, as ``session``'s browser would ask for it over the
    kernel's websocket; the HTTP status instead when the websocket is refused."""
    try:
        return asyncio.run(_widget_state(server, kernel_id, session))
    except HTTPClientError as exc:
        return exc.code


def refused_socket(url: str, headers: dict[str, str] | None = None) -> int:
    """The HTTP status a websocket client gets for ``url`` (0: it was let in)."""

    async def attempt() -> int:
        try:
            connection = await websocket_connect(
                HTTPRequest(url, headers=headers, connect_timeout=30)
            )
        except HTTPClientError as exc:
            return exc.code
        await _hang_up(connection)
        return 0

    return asyncio.run(attempt())


def test_another_viewer_gets_404_from_the_kernel_api_and_the_kernel_lives_on(
    scene: tuple[World, Server],
) -> None:
    world, server = scene
    a = login(server.base, *world.viewers["a"])
    b = login(server.base, *world.viewers["b"])
    text = page(server, a)
    assert f"ORIGINS {origins_of(world, 'a')}" in text
    kernel = kernel_of(text)
    api = server.base + f"api/kernels/{kernel}"
    assert a.get(api, timeout=30).status_code == 200  # the viewer's own kernel
    assert b.get(api, timeout=30).status_code == 404
    assert requests.get(api, timeout=30).status_code == 404  # signed in or not: no such kernel
    assert b.delete(api, headers=xsrf(b), timeout=30).status_code == 404
    missing = server.base + f"api/kernels/{uuid.uuid4()}"
    assert b.get(missing, timeout=30).status_code == 404  # the same answer as a missing kernel
    assert a.get(api, timeout=30).status_code == 200  # A's kernel lives on, with A's rows
    assert f"WIDGET-ORIGINS {origins_of(world, 'a')}" in str(widget_state(server, kernel, a))


def test_another_viewer_cannot_shut_a_viewers_kernel_down(scene: tuple[World, Server]) -> None:
    world, server = scene
    a = login(server.base, *world.viewers["a"])
    b = login(server.base, *world.viewers["b"])
    kernel = kernel_of(page(server, a))
    shutdown = server.base + f"voila/api/shutdown/{kernel}"
    assert b.post(shutdown, headers=xsrf(b), timeout=30).status_code == 404
    assert requests.post(shutdown, timeout=30).status_code == 404
    assert a.get(server.base + f"api/kernels/{kernel}", timeout=30).status_code == 200
    assert f"WIDGET-ORIGINS {origins_of(world, 'a')}" in str(widget_state(server, kernel, a))


def test_another_viewers_websocket_to_a_kernel_is_refused(scene: tuple[World, Server]) -> None:
    world, server = scene
    a = login(server.base, *world.viewers["a"])
    b = login(server.base, *world.viewers["b"])
    kernel = kernel_of(page(server, a))
    assert widget_state(server, kernel, b) == 404  # not A's rows
    assert widget_state(server, kernel, requests.Session()) == 404
    state = str(widget_state(server, kernel, a))
    assert f"WIDGET-ORIGINS {origins_of(world, 'a')}" in state
    assert origins_of(world, "b") not in state


def test_no_other_route_reaches_a_kernel(scene: tuple[World, Server]) -> None:
    """Of jupyter_server's kernel routes the server registers the model, its websocket and
    Voila's shutdown only (checked above): no listing, sessions, interrupt or restart."""
    world, server = scene
    a = login(server.base, *world.viewers["a"])
    kernel = kernel_of(page(server, a))
    for path in (f"api/kernels/{kernel}/interrupt", f"api/kernels/{kernel}/restart"):
        assert a.post(server.base + path, headers=xsrf(a), timeout=30).status_code == 404, path
    for path in ("api/kernels", "api/sessions", f"voila/execution/{kernel}"):
        assert a.get(server.base + path, timeout=30).status_code == 404, path


def test_a_kernel_started_for_a_page_is_its_viewers_only(scene: tuple[World, Server]) -> None:
    world, server = scene
    a = login(server.base, *world.viewers["a"])
    b = login(server.base, *world.viewers["b"])
    text = page(server, a, FRESH)
    assert f"ORIGINS {origins_of(world, 'a')}" in text
    kernel = kernel_of(text)
    api = server.base + f"api/kernels/{kernel}"
    shutdown = server.base + f"voila/api/shutdown/{kernel}"
    assert b.get(api, timeout=30).status_code == 404
    assert b.post(shutdown, headers=xsrf(b), timeout=30).status_code == 404
    assert widget_state(server, kernel, b) == 404
    assert a.get(api, timeout=30).status_code == 200
    # The owner may shut their own page's kernel down (the page does so when it is closed).
    assert a.post(shutdown, headers=xsrf(a), timeout=30).status_code == 204
    assert a.get(api, timeout=30).status_code == 404


def _waiting_kernel(server: Server, taken: str) -> str:
    """The pre-heated kernel that started after ``taken`` was taken and now waits, unclaimed,
    for the next page (the server logs both: "Pre-heated kernel ... is ready", "Using ...")."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        log = server.log.read_text(errors="replace")
        used = set(USED.findall(log))
        ready = [k for k in READY.findall(log) if k not in used and k != taken]
        if ready:
            return str(ready[-1])
        time.sleep(0.2)
    raise AssertionError("no pre-heated kernel became ready")


def test_an_unclaimed_pool_kernel_is_nobodys(scene: tuple[World, Server]) -> None:
    world, server = scene
    a = login(server.base, *world.viewers["a"])
    b = login(server.base, *world.viewers["b"])
    waiting = _waiting_kernel(server, kernel_of(page(server, b)))  # B took one; the next waits
    api = server.base + f"api/kernels/{waiting}"
    for who in (a, b):
        assert who.get(api, timeout=30).status_code == 404
        assert widget_state(server, waiting, who) == 404
    text = page(server, a)  # A's page takes it: it is A's now
    assert kernel_of(text) == waiting
    assert a.get(api, timeout=30).status_code == 200
    assert b.get(api, timeout=30).status_code == 404


def _steal(url: str, headers: dict[str, str] | None, stolen: list[str]) -> threading.Thread:
    """A local client waiting on a kernel's request socket in its place, in the background."""

    async def listen() -> None:
        request = HTTPRequest(url, headers=headers, connect_timeout=30)
        try:
            connection = await websocket_connect(request)
        except HTTPClientError:
            return
        try:
            with contextlib.suppress(TimeoutError):
                message = await asyncio.wait_for(connection.read_message(), 40)
                if message:
                    stolen.append(str(message))
        finally:
            await _hang_up(connection)

    thief = threading.Thread(target=asyncio.run, args=(listen(),), daemon=True)
    thief.start()
    thief.join(timeout=2)  # connected (or refused) by now
    return thief


@pytest.mark.parametrize("key", [None, "a-guessed-secret"], ids=["no secret", "wrong secret"])
def test_a_kernels_request_socket_answers_only_that_kernel(
    scene: tuple[World, Server], key: str | None
) -> None:
    world, server = scene
    a = login(server.base, *world.viewers["a"])
    b = login(server.base, *world.viewers["b"])
    waiting = _waiting_kernel(server, kernel_of(page(server, b)))
    query = ws_url(server, f"voila/query/{waiting}")
    stolen: list[str] = []
    thief = _steal(query, {REQUEST_KEY_HEADER: key} if key else None, stolen)
    try:
        text = page(server, a, timeout=30)  # takes the waiting kernel, which gets its viewer
    except (requests.Timeout, requests.ConnectionError):  # a read time-out while streaming
        text = ""  # the kernel never got its viewer: the page hung
    thief.join(timeout=5)
    rendered = f"ORIGINS {origins_of(world, 'a')}" in text
    assert (bool(stolen), rendered) == (False, True)  # (a client got A's request, A's page hung)
    assert kernel_of(text) == waiting
    assert refused_socket(query, {REQUEST_KEY_HEADER: key} if key else None) == 404
    # Even shown by its notebook, the kernel's secret is spent once it has its viewer, and
    # the server's log never holds it.
    shown = re.findall(r"KEY-BEFORE (\S+)", text)
    assert len(shown) == 1 and len(shown[0]) >= 32
    assert refused_socket(query, {REQUEST_KEY_HEADER: shown[0]}) == 404
    assert shown[0] not in server.log.read_text(errors="replace")


def test_nothing_the_browser_sends_reaches_the_kernel(scene: tuple[World, Server]) -> None:
    world, server = scene
    a = login(server.base, *world.viewers["a"])
    b = login(server.base, *world.viewers["b"])
    mark = secrets.token_hex(8)

    def hostile(session: requests.Session) -> dict[str, Any]:
        """A request whose query string, headers and host name a kernel must not see (the
        cookies by hand: requests matches them to the Host header's name)."""
        headers = {
            VIEWER_HEADER: f"forged-{mark}",
            "X-Anything": f"header-{mark}",
            "Host": f"host-{mark}.example:1",
            "Cookie": cookies(session),
        }
        params = {"injected": f"query-{mark}", "VOILA_PREHEAT": f"False-{mark}"}
        return {"params": params, "headers": headers}

    page(server, b, **hostile(b))  # B's request starts the pool's next kernel: none may stay
    for name in (OWNED, FRESH):
        text = page(server, a, name, **hostile(a))
        assert f"ORIGINS {origins_of(world, 'a')}" in text
        env = kernel_env(text)
        assert mark not in json.dumps(env), name
        assert not {k for k in env if k in {"QUERY_STRING", "SERVER_NAME", "VOILA_REQUEST_URL"}}
        assert env.get("VOILA_APP_PORT") == server.base.rsplit(":", 1)[1].strip("/"), name


def test_every_route_taking_a_kernel_id_checks_whose_kernel_it_is(
    isolated_env: Path, sqlite_url: str, tmp_path: Path
) -> None:
    """The server's own route table (Voila's and jupyter_server's routes as it registers
    them): each that takes a kernel id is one of the owner-checking handlers."""
    (tmp_path / "empty").mkdir()  # no notebook: no pool kernel starts
    settings = load_settings(secret_key=secrets.token_urlsafe(48), database_url=sqlite_url)
    bench = Workbench(settings, sqlite_url)
    try:
        app = build_app(bench, ServeOptions(pool_size=1, folders=(tmp_path / "empty",)))
        app.connection_dir = str(tmp_path)
        app.init_settings()
        routes = {str(spec[0]): spec[1] for spec in app.init_handlers()}
    finally:
        bench.close()
    checked = {
        lockdown.OwnKernelHandler,
        lockdown.OwnKernelSocketHandler,
        lockdown.OwnShutdownHandler,
        lockdown.LocalRequestInfoHandler,
    }
    taking = {p: h for p, h in routes.items() if "kernel" in p or "shutdown" in p or "query" in p}
    assert set(taking.values()) == checked, taking
    assert not [p for p in routes if p.rstrip("/$").endswith(("api/kernels", "api/sessions"))]
