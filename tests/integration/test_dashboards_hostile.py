"""A hostile dashboard served to a viewer of team A: its kernel holds that viewer and nothing
of the service's.

A real `workbench dashboards serve` (pre-heated kernels from spare processes, Redis query
cache, kernels as the kernel user of WORKBENCH_TEST_KERNEL_USER) renders a notebook that prints
its whole environment (its own and its parent's), opens the service's secret key file and
``.env`` by their paths, reads team B's rows, ``users``, ``secrets``, ``audit_log`` and every
key in Redis. The page and Redis are then searched for the master key, the service's URL,
other users' passwords and B's rows: none is there, while A's rows show.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterator
from pathlib import Path

import nbformat
import psutil
import pytest
import redis
import requests
from sqlalchemy import select

from tests import services
from tests.e2e.world import Server, World, build_world, drop_roles, start_server
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.dashboards.tokens import VIEWER_HEADER, identity_of
from workbench.db.identity_connect import user_database_url
from workbench.db.models import User

pytestmark = pytest.mark.postgres

KERNEL_USER_ENV = "WORKBENCH_TEST_KERNEL_USER"
REDIS_DB = 11  # a database of its own: the test reads every key in it

HOSTILE = [
    """import json, os
from workbench.dashboards import viewer
print("ENV-BEFORE", json.dumps(dict(os.environ), sort_keys=True))""",
    "me = viewer.connect()",
    """def attempt(label, fn):
    try:
        print(label, fn())
    except BaseException as exc:
        print(label, "refused:", type(exc).__name__, str(exc)[:300])

attempt("ENV-AFTER", lambda: json.dumps(dict(os.environ), sort_keys=True))
attempt("PROC-SELF", lambda: open("/proc/self/environ", "rb").read())
attempt("PROC-PARENT", lambda: open(f"/proc/{os.getppid()}/environ", "rb").read())
server_pid = os.environ.get("JPY_PARENT_PID")
attempt("PROC-SERVER", lambda: open(f"/proc/{server_pid}/environ", "rb").read())
attempt("KEY-FILE", lambda: open(SERVICE_HOME + "/secret_key").read())
attempt("DOT-ENV", lambda: open(SERVICE_CWD + "/.env").read())
attempt("HOME", lambda: sorted(os.listdir(os.path.expanduser("~"))))
attempt("SERVICE-HOME", lambda: sorted(os.listdir(SERVICE_HOME)))
from workbench.core.config import load_settings
attempt("SETTINGS-KEY", lambda: load_settings().effective_secret_key())
attempt("ORIGINS", lambda: sorted(me.sql("SELECT DISTINCT origin FROM flights")["origin"]))
attempt("A-ROWS", lambda: int(me.sql("SELECT count(*) AS n FROM flights", cache=300)["n"][0]))
for table in ("users", "secrets", "audit_log", "memberships"):
    attempt("TABLE-" + table, lambda: me.sql(f"SELECT * FROM {table}").to_dict("records"))
attempt("SECRET-VALUES", lambda: me.sql("SELECT value_encrypted FROM secrets").to_dict())
import redis
def everything_in_redis():
    client = redis.Redis.from_url(me.workbench.settings.effective_redis_url())
    return {k.decode(): (client.get(k) or b"").hex()[:400] for k in client.keys("*")
            if client.type(k) == b"string"}
attempt("REDIS", everything_in_redis)""",
]


def hostile_notebook(folder: Path, service_home: Path, service_cwd: Path) -> None:
    cells = [
        nbformat.v4.new_code_cell(
            f"SERVICE_HOME = {str(service_home)!r}\nSERVICE_CWD = {str(service_cwd)!r}"
        ),
        *(nbformat.v4.new_code_cell(source) for source in HOSTILE),
    ]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    notebook.metadata["workbench"] = {"title": "Hostile"}
    nbformat.write(notebook, folder / "hostile.ipynb")


def kernel_user_name() -> str:
    name = os.environ.get(KERNEL_USER_ENV)
    if not name:
        message = (
            f"{KERNEL_USER_ENV} names no kernel user: create an unprivileged user and export "
            "it (`.ci/run` creates and exports wbkernel)"
        )
        if services.in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return name


def login(base: str, name: str, password: str) -> requests.Session:
    session = requests.Session()
    session.get(base + "login", timeout=30)
    reply = session.post(
        base + "login",
        data={"username": name, "password": password, "_xsrf": session.cookies.get("_xsrf")},
        timeout=30,
    )
    reply.raise_for_status()
    return session


@pytest.fixture(scope="module")
def scene(
    pg_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[World, Server, str]]:
    user = kernel_user_name()
    problem = services.check_redis()
    if problem:
        services.unavailable("Redis", problem)
    redis_url = services.REDIS_URL.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    home = tmp_path_factory.mktemp("home")
    with services.temporary_database(template=pg_template) as name:
        world = build_world(services.sqlalchemy_url(name), home)
        try:
            key = world.env["WORKBENCH_SECRET_KEY"]
            (home / "secret_key").write_text(key)
            (home / "secret_key").chmod(0o600)
            workdir = tmp_path_factory.mktemp("serve")
            (workdir / ".env").write_text(f"WORKBENCH_SECRET_KEY={key}\n")
            folder = tmp_path_factory.mktemp("hostile")
            hostile_notebook(folder, home, workdir)
            world.env.update({"WORKBENCH_REDIS_URL": redis_url, "WORKBENCH_KERNEL_USER": user})
            server = start_server(world, workdir, pool_size=1, folder=folder)
            try:
                yield world, server, redis_url
            finally:
                assert server.stop() == []
        finally:
            drop_roles(world)
    redis.Redis.from_url(redis_url).flushdb()


def forbidden(world: World) -> dict[str, str]:
    """What no dashboard kernel of team A's viewer may ever show, by what it is."""
    settings = load_settings(secret_key=world.env["WORKBENCH_SECRET_KEY"], database_url=world.url)
    found = {
        "master key": world.env["WORKBENCH_SECRET_KEY"],
        "service URL": world.url,
        "B's viewer password": world.viewers["b"][1],
        "analyst's password": world.viewers["analyst"][1],
        "B's user name": world.viewers["b"][0],
        "B's rows": "LGA",
    }
    with Workbench(settings, world.url) as bench, bench.session() as session:
        for who in ("a", "b", "analyst"):
            user = session.scalar(select(User).where(User.username == world.viewers[who][0]))
            assert user is not None
            password = user_database_url(settings, user).password
            found[f"{who}'s database password"] = str(password)
    return found


def not_on_a_page(world: World) -> dict[str, str]:
    """What A's page may not show: everything but A's own login."""
    found = forbidden(world)
    del found["a's database password"]
    return found


def page_of(server: Server, session: requests.Session, **headers: str) -> str:
    reply = session.get(server.base + "voila/render/hostile.ipynb", timeout=120, headers=headers)
    reply.raise_for_status()
    return html.unescape(reply.text)


def test_a_hostile_dashboard_holds_its_viewer_and_nothing_of_the_service(
    scene: tuple[World, Server, str],
) -> None:
    world, server, redis_url = scene
    b = login(server.base, *world.viewers["b"])
    assert "ORIGINS ['LGA']" in page_of(server, b)  # B's entries are now in Redis, sealed
    a = login(server.base, *world.viewers["a"])
    # A browser's own viewer header (B's identity, as the server would make it) is dropped.
    settings = load_settings(secret_key=world.env["WORKBENCH_SECRET_KEY"], database_url=world.url)
    with Workbench(settings, world.url) as bench, bench.session() as session:
        user_b = session.scalar(select(User).where(User.username == world.viewers["b"][0]))
        assert user_b is not None
        forged = identity_of(bench, user_b).dump()
    pages = [page_of(server, a), page_of(server, a, **{VIEWER_HEADER: forged})]
    a_rows = world.rows_of("a")
    for page in pages:
        assert f"ORIGINS {sorted(set(a_rows['origin']))!r}" in page  # A's rows show
        assert f"A-ROWS {len(a_rows)}" in page
        for label in ("KEY-FILE", "DOT-ENV", "SERVICE-HOME", "PROC-SERVER"):
            assert f"{label} refused:" in page, label
        for table in ("users", "secrets", "audit_log", "memberships"):
            assert f"TABLE-{table} refused:" in page, table
        assert "SETTINGS-KEY (None, " in page
        assert "REDIS {" in page  # it did read Redis: every key, sealed
        for what, value in not_on_a_page(world).items():
            assert value not in page, what
    # The server's log names requests, never their headers (the viewer's login is in one).
    log = server.log.read_text(errors="replace")
    for what, value in forbidden(world).items():
        if what not in ("service URL", "B's user name", "B's rows"):
            assert value not in log, what
    sealed = redis.Redis.from_url(redis_url)
    try:
        keys = sealed.keys("wb:cache:*")
        assert len({k.split(b":")[2] for k in keys}) >= 2  # entries of both logins
        for key in keys:
            value = sealed.get(key) if sealed.type(key) == b"string" else b""
            for what, secret in forbidden(world).items():
                assert secret.encode() not in (value or b""), what
    finally:
        sealed.close()


def test_dashboard_kernels_run_as_the_kernel_user_with_an_allow_listed_environment(
    scene: tuple[World, Server, str],
) -> None:
    world, server, _ = scene
    a = login(server.base, *world.viewers["a"])
    page_of(server, a)
    kernels = server.kernels()
    assert kernels
    uid = psutil.Process(server.process.pid).uids().real
    for kernel in kernels:
        assert kernel.uids().real != uid  # not the server's OS user
        environ = Path(f"/proc/{kernel.pid}/environ").read_bytes().split(b"\0")
        names = {entry.split(b"=", 1)[0].decode() for entry in environ if entry}
        assert not {n for n in names if n.startswith(("WORKBENCH_SECRET", "SENTRY_"))}
        assert "WORKBENCH_DATABASE_URL" not in names and "WORKBENCH_REDIS_URL" not in names
        assert not {n for n in names if n.endswith("_FILE") and n.startswith("WORKBENCH_")}
        assert "WORKBENCH_HOME" not in names
        home = [e for e in environ if e.startswith(b"HOME=")]
        assert home and home[0] != f"HOME={os.environ.get('HOME', '')}".encode()
