"""A dashboard session ends at once, on every server process, when its account's session
generation moves: signing out, `users passwd` (from another process: the CLI),
`users rotate-credentials` and `users disable`.

Two real `workbench dashboards serve` processes share one database (SQLite and PostgreSQL);
a browser's session cookie is replayed, as a thief would, on both servers after each act.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import requests

from tests import services
from tests.cli import run_cli
from tests.e2e.world import Server, World, drop_roles, start_server
from workbench.accounts import api as accounts
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.dashboards.tokens import SESSION_COOKIE

ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@dataclass
class Scene:
    world: World
    servers: tuple[Server, Server]
    home: Path

    @property
    def postgres(self) -> bool:
        return self.world.url.startswith("postgresql")

    def add_viewer(self) -> tuple[str, str]:
        """A new viewer (in team mode with a login and a team of their own)."""
        name, password = f"v_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
        settings = load_settings(secret_key=self.world.env["WORKBENCH_SECRET_KEY"])
        with Workbench(settings, self.world.url) as bench:
            teams: tuple[str, ...] = ()
            if self.postgres:
                accounts.add_team(f"t-{name}", workbench=bench)
                teams = (f"t-{name}",)
            made = accounts.add_user(
                name, role="viewer", password=password, teams_=teams, workbench=bench
            )
        if made.user.db_role:
            self.world.roles.append(made.user.db_role)
        return name, password

    def cli(self, *args: str) -> None:
        result = run_cli(*args, env=self.world.env)
        assert result.code == 0, result.output


def sign_in(server: Server, name: str, password: str) -> requests.Session:
    browser = requests.Session()
    browser.get(server.base + "login", timeout=30)
    reply = browser.post(
        server.base + "login",
        data={"username": name, "password": password, "_xsrf": browser.cookies.get("_xsrf")},
        timeout=30,
        allow_redirects=False,
    )
    assert reply.status_code == 302, reply.text
    assert browser.cookies.get(SESSION_COOKIE)
    return browser


def replay(server: Server, cookie: str) -> requests.Response:
    """The index page asked for with nothing but a stolen session cookie."""
    return requests.get(
        server.base,
        cookies={SESSION_COOKIE: cookie},
        timeout=30,
        allow_redirects=False,
    )


def assert_signed_in(scene: Scene, cookie: str) -> None:
    for server in scene.servers:
        reply = replay(server, cookie)
        assert reply.status_code == 200, reply.status_code
        assert "Your dashboards" in reply.text


def assert_ended(scene: Scene, cookie: str) -> None:
    """Both servers send the cookie's bearer to sign in, at once."""
    for server in scene.servers:
        reply = replay(server, cookie)
        assert reply.status_code == 302, reply.status_code
        assert reply.headers["Location"].startswith("/login?next=")


@pytest.fixture(scope="module", params=ENGINES)
def scene(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scene]:
    home = tmp_path_factory.mktemp("home")
    folder = tmp_path_factory.mktemp("dashboards")
    env = {
        "WORKBENCH_HOME": str(home),
        "WORKBENCH_SECRET_KEY": secrets.token_urlsafe(48),
        "WORKBENCH_PLUGINS": "",
    }
    if request.param == "sqlite":
        path = home / "workbench.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url, dbname = f"sqlite+pysqlite:///{path}", None
    else:
        dbname = services.new_database_name()
        services.create_database(dbname, request.getfixturevalue("pg_template"))
        url = services.sqlalchemy_url(dbname)
    env["WORKBENCH_DATABASE_URL"] = url
    world = World(url=url, env=env, flights=pd.DataFrame())
    started: list[Server] = []
    try:
        for _ in range(2):
            started.append(start_server(world, tmp_path_factory.mktemp("serve"), pool_size=0,
                                        folder=folder))  # fmt: skip
        yield Scene(world, (started[0], started[1]), home)
    finally:
        for server in started:
            server.stop()
        if dbname is not None:
            services.drop_database(dbname)
            drop_roles(world)


def test_signing_out_ends_the_session_on_every_server(scene: Scene) -> None:
    name, password = scene.add_viewer()
    browser = sign_in(scene.servers[0], name, password)
    stolen = browser.cookies[SESSION_COOKIE]
    other = sign_in(scene.servers[1], name, password).cookies[SESSION_COOKIE]  # another browser
    assert_signed_in(scene, stolen)
    page = browser.get(scene.servers[0].base + "logout", timeout=30)
    reply = browser.post(
        scene.servers[0].base + "logout",
        data={"_xsrf": browser.cookies.get("_xsrf")},
        timeout=30,
        allow_redirects=False,
    )
    assert page.status_code == 200 and reply.status_code == 302
    assert_ended(scene, stolen)
    assert_ended(scene, other)  # every session of the account, not just this browser's
    assert_signed_in(scene, sign_in(scene.servers[1], name, password).cookies[SESSION_COOKIE])


def test_a_password_set_from_the_cli_ends_every_session(scene: Scene, tmp_path: Path) -> None:
    name, password = scene.add_viewer()
    bystander = sign_in(scene.servers[0], *scene.add_viewer()).cookies[SESSION_COOKIE]
    stolen = sign_in(scene.servers[0], name, password).cookies[SESSION_COOKIE]
    assert_signed_in(scene, stolen)
    new = tmp_path / "password"
    new.write_text(secrets.token_urlsafe(16))
    scene.cli("users", "passwd", name, "--password-file", str(new))
    assert_ended(scene, stolen)
    assert_signed_in(scene, bystander)  # another account's session goes on
    fresh = sign_in(scene.servers[1], name, new.read_text()).cookies[SESSION_COOKIE]
    assert_signed_in(scene, fresh)


def test_disabling_ends_every_session_at_once(scene: Scene) -> None:
    name, password = scene.add_viewer()
    stolen = sign_in(scene.servers[1], name, password).cookies[SESSION_COOKIE]
    assert_signed_in(scene, stolen)
    started = time.monotonic()
    scene.cli("users", "disable", name)
    assert_ended(scene, stolen)
    assert time.monotonic() - started < 30  # the CLI's start-up, not a cache window
    browser = requests.Session()
    browser.get(scene.servers[0].base + "login", timeout=30)
    refused = browser.post(
        scene.servers[0].base + "login",
        data={"username": name, "password": password, "_xsrf": browser.cookies.get("_xsrf")},
        timeout=30,
        allow_redirects=False,
    )
    assert refused.status_code == 401


@pytest.mark.postgres
@pytest.mark.parametrize("scene", ["postgresql"], indirect=True)  # logins exist in team mode
def test_rotating_credentials_ends_every_session(scene: Scene) -> None:
    name, password = scene.add_viewer()
    stolen = sign_in(scene.servers[0], name, password).cookies[SESSION_COOKIE]
    assert_signed_in(scene, stolen)
    scene.cli("users", "rotate-credentials", name)
    assert_ended(scene, stolen)


def test_a_forged_or_altered_cookie_is_no_session(scene: Scene) -> None:
    name, password = scene.add_viewer()
    cookie = sign_in(scene.servers[0], name, password).cookies[SESSION_COOKIE]
    for forged in (cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"), "x", ""):
        assert replay(scene.servers[0], forged).status_code == 302


#: ``next=`` values (as sent in the query) that would take a browser to another site.
HOSTILE_NEXT = [
    "/%09/evil.example",  # the tab tornado keeps and Chromium drops: `//evil.example`
    "%2F%09%2Fevil.example",
    "/%0D/evil.example",
    "/%E2%80%8B/evil.example",  # a zero-width space
    "/%20/evil.example",
    "//evil.example",
    "/%5Cevil.example",
    "https://evil.example/",
    "javascript:alert(1)",
]


@pytest.mark.parametrize("hostile", HOSTILE_NEXT)
def test_signing_in_never_redirects_to_another_site(scene: Scene, hostile: str) -> None:
    server = scene.servers[0]
    name, password = scene.add_viewer()
    browser = requests.Session()
    browser.get(server.base + "login", timeout=30)
    reply = browser.post(
        f"{server.base}login?next={hostile}",
        data={"username": name, "password": password, "_xsrf": browser.cookies.get("_xsrf")},
        timeout=30,
        allow_redirects=False,
    )
    assert (reply.status_code, reply.headers["Location"]) == (302, "/")
    # Already signed in, the login page sends a visitor straight on: to this server too.
    again = browser.get(f"{server.base}login?next={hostile}", timeout=30, allow_redirects=False)
    assert (again.status_code, again.headers["Location"]) == (302, "/")


def test_signing_in_goes_on_to_a_page_of_this_server(scene: Scene) -> None:
    server = scene.servers[0]
    browser = sign_in(server, *scene.add_viewer())
    target = "/voila/render/flights_operations.ipynb?carrier=UA"
    reply = browser.get(
        f"{server.base}login", params={"next": target}, timeout=30, allow_redirects=False
    )
    assert (reply.status_code, reply.headers["Location"]) == (302, target)


@pytest.mark.parametrize("scene", ["postgresql"], indirect=True)
def test_a_database_outage_is_a_plain_503_and_sessions_resume_after(scene: Scene) -> None:
    """While the database refuses connections no session can be checked: the servers answer
    503 with their error page (no traceback), and the same cookie works once it is back."""
    name, password = scene.add_viewer()
    cookie = sign_in(scene.servers[0], name, password).cookies[SESSION_COOKIE]
    dbname = scene.world.url.rsplit("/", 1)[1]
    with services.admin_connect() as admin:
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (dbname,),
            )
            for server in scene.servers:
                reply = replay(server, cookie)
                assert reply.status_code == 503, reply.status_code
                assert "Traceback" not in reply.text and "psycopg" not in reply.text
        finally:
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
    assert_signed_in(scene, cookie)
