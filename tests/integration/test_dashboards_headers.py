"""Security headers on the Workbench's HTTP servers, and sign-in throttled per client address.

Against a real `workbench dashboards serve` (on SQLite: the headers and the throttle do not
depend on the database) and a real `workbench scheduler --metrics-port` health port. The
throttle test signs in from two loopback addresses (127.0.0.2 fails, 127.0.0.1 does not), so
that one address's refusal is shown not to touch another's.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import nbformat
import pandas as pd
import pytest
from tornado import httpclient, web

from tests.e2e.world import Server, World, free_port, start_server
from workbench.accounts import api as accounts
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.dashboards.errors import SignInThrottledError
from workbench.dashboards.headers import add_transport_headers
from workbench.dashboards.throttle import FAILURES, MAX_ADDRESSES, AddressThrottle
from workbench.dashboards.tokens import SESSION_COOKIE

#: What every answer of every Workbench HTTP server carries.
COMMON = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}


def assert_secure(headers: http.client.HTTPMessage | dict[str, str], what: str) -> None:
    for name, value in COMMON.items():
        assert headers.get(name) == value, (what, name)
    policy = headers.get("Content-Security-Policy") or ""
    assert "frame-ancestors 'none'" in policy, what
    assert headers.get("Referrer-Policy") in ("same-origin", "no-referrer"), what
    assert "Strict-Transport-Security" not in headers, what  # plain HTTP: no HSTS


class Viewer:
    """One user name and password, and an account made for them on the server's database."""

    def __init__(self, world: World) -> None:
        self.name, self.password = f"v_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
        settings = load_settings(secret_key=world.env["WORKBENCH_SECRET_KEY"])
        with Workbench(settings, world.url) as bench:
            accounts.add_user(self.name, role="viewer", password=self.password, workbench=bench)


@pytest.fixture(scope="module")
def served(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[World, Server]]:
    home = tmp_path_factory.mktemp("home")
    path = home / "workbench.db"
    shutil.copyfile(sqlite_template, path)
    folder = tmp_path_factory.mktemp("dashboards")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hi')")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    notebook.metadata["workbench"] = {"title": "Hello"}
    nbformat.write(notebook, folder / "hello.ipynb")
    url = f"sqlite+pysqlite:///{path}"
    env = {
        "WORKBENCH_HOME": str(home),
        "WORKBENCH_SECRET_KEY": secrets.token_urlsafe(48),
        "WORKBENCH_PLUGINS": "",
        "WORKBENCH_DATABASE_URL": url,
    }
    world = World(url=url, env=env, flights=pd.DataFrame())
    server = start_server(world, tmp_path_factory.mktemp("serve"), pool_size=0, folder=folder)
    try:
        yield world, server
    finally:
        server.stop()


class Client:
    """A browser-like client from one source address: cookies and the XSRF token."""

    def __init__(self, server: Server, source: str = "127.0.0.1") -> None:
        parts = urlsplit(server.base)
        self.host, self.port, self.source = parts.hostname or "", parts.port or 80, source
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[http.client.HTTPResponse, str]:
        conn = http.client.HTTPConnection(
            self.host, self.port, timeout=60, source_address=(self.source, 0)
        )
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode({**form, "_xsrf": self.cookies.get("_xsrf", "")})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            reply = conn.getresponse()
            text = reply.read().decode("utf-8", "replace")
        finally:
            conn.close()
        for raw in reply.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(raw).items():
                self.cookies[name] = morsel.value
        return reply, text

    def sign_in(self, name: str, password: str) -> tuple[http.client.HTTPResponse, str]:
        self.request("GET", "/login")
        return self.request("POST", "/login", {"username": name, "password": password})


def test_every_answer_of_the_dashboards_server_has_the_security_headers(
    served: tuple[World, Server],
) -> None:
    world, server = served
    viewer = Viewer(world)
    anonymous = Client(server)
    for path in ("/login", "/", "/voila/render/hello.ipynb", "/no/such/page", "/logout"):
        reply, _ = anonymous.request("GET", path)
        assert reply.status in (200, 302, 404), (path, reply.status)
        assert_secure(reply.headers, f"anonymous GET {path}")
    signed_in = Client(server)
    reply, _ = signed_in.sign_in(viewer.name, viewer.password)
    assert reply.status == 302 and SESSION_COOKIE in signed_in.cookies
    assert_secure(reply.headers, "POST /login")
    for path in ("/", "/voila/render/hello.ipynb", "/api/kernels", "/no/such/page"):
        reply, _ = signed_in.request("GET", path)
        assert reply.status in (200, 403, 404), (path, reply.status)
        assert_secure(reply.headers, f"signed-in GET {path}")
    policy = reply.headers["Content-Security-Policy"]
    assert "object-src 'none'" in policy and "default-src 'self'" in policy
    assert reply.headers["Referrer-Policy"] == "same-origin"


def test_the_health_port_has_the_security_headers(tmp_path: Path, sqlite_url: str) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(
        {
            "WORKBENCH_DATABASE_URL": sqlite_url,
            "WORKBENCH_HOME": str(tmp_path / "home"),
            "WORKBENCH_PLUGINS": "",
            "WORKBENCH_SCHEDULER_POLL_SECONDS": "0.5",
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "workbench", "scheduler", "--workers", "1",
         "--metrics-port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        answered: dict[str, tuple[int, http.client.HTTPMessage]] = {}
        while time.monotonic() < deadline and len(answered) < 4:
            for path in ("/livez", "/readyz", "/metrics", "/nothing"):
                if path in answered:
                    continue
                request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
                try:
                    with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310
                        answered[path] = (reply.status, reply.headers)
                except urllib.error.HTTPError as exc:
                    answered[path] = (exc.code, exc.headers)
                except OSError:
                    time.sleep(0.1)
        assert set(answered) == {"/livez", "/readyz", "/metrics", "/nothing"}
        for path, (status, headers) in answered.items():
            assert status in (200, 404, 503), path
            assert_secure(headers, path)
            assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    finally:
        os.killpg(process.pid, 15)
        process.wait(30)


def test_failed_sign_ins_from_one_address_refuse_that_address_only(
    served: tuple[World, Server],
) -> None:
    world, server = served
    viewer = Viewer(world)
    guesser = Client(server, source="127.0.0.2")
    for attempt in range(FAILURES):
        # Another user name each time: no account's own lock is ever reached.
        reply, page = guesser.sign_in(f"nobody{attempt}", "a-guessed-password")
        assert reply.status == 401, (attempt, reply.status)
        assert "Wrong user name or password." in page
    # The right password of a real account, from the guessing address: refused, before any
    # password is checked, with a message saying what to do.
    reply, page = guesser.sign_in(viewer.name, viewer.password)
    assert reply.status == 429
    assert "Too many failed sign-ins came from your address: try again in 10 minutes" in page
    assert 0 < int(reply.headers["Retry-After"]) <= 600
    assert SESSION_COOKIE not in guesser.cookies
    # Another address is not this one: the same account signs in from there at once.
    reply, _ = Client(server, source="127.0.0.1").sign_in(viewer.name, viewer.password)
    assert reply.status == 302


class _Transport(web.RequestHandler):
    """A page that adds the dashboards server's transport headers, as its sign-in does."""

    def get(self) -> None:
        add_transport_headers(self)
        self.finish("ok")


def test_hsts_is_sent_over_tls_only(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def fetch_both() -> dict[str, httpclient.HTTPResponse]:
        app = web.Application([("/", _Transport)])
        plain, secure = free_port(), free_port()
        servers = [
            app.listen(plain, "127.0.0.1"),
            app.listen(secure, "127.0.0.1", ssl_options=context),
        ]
        client = httpclient.AsyncHTTPClient()
        try:
            return {
                "http": await client.fetch(f"http://127.0.0.1:{plain}/"),
                "https": await client.fetch(f"https://127.0.0.1:{secure}/", validate_cert=False),
                # A client's claim of TLS is not TLS: the server trusts no forwarded header.
                "forwarded": await client.fetch(
                    f"http://127.0.0.1:{plain}/", headers={"X-Forwarded-Proto": "https"}
                ),
            }
        finally:
            for server in servers:
                server.stop()

    replies = asyncio.run(fetch_both())
    assert replies["https"].headers.get("Strict-Transport-Security") == "max-age=31536000"
    assert "Strict-Transport-Security" not in replies["http"].headers
    assert "Strict-Transport-Security" not in replies["forwarded"].headers


def test_the_address_throttle_forgets_failures_older_than_its_window() -> None:
    now = [1000.0]
    throttle = AddressThrottle(failures=3, window=60.0, clock=lambda: now[0])
    for _ in range(3):
        throttle.check("192.0.2.7")
        throttle.failed("192.0.2.7")
        now[0] += 10
    with pytest.raises(SignInThrottledError, match="try again in 1 minute,") as refused:
        throttle.check("192.0.2.7")
    assert refused.value.retry_after == 30  # the first failure leaves the window at 1060
    throttle.check("192.0.2.8")  # another address
    now[0] = 1060.0
    throttle.check("192.0.2.7")  # one failure has left the window: one more try
    throttle.failed("192.0.2.7")
    with pytest.raises(SignInThrottledError):
        throttle.check("192.0.2.7")


def test_the_address_throttle_remembers_a_bounded_number_of_addresses() -> None:
    throttle = AddressThrottle(failures=1, window=60.0)
    throttle.failed("198.51.100.1")
    for index in range(MAX_ADDRESSES):
        throttle.failed(f"10.{index // 65536}.{index // 256 % 256}.{index % 256}")
    throttle.check("198.51.100.1")  # the least recent address was forgotten first
    with pytest.raises(SignInThrottledError):
        throttle.check("10.0.0.0")
