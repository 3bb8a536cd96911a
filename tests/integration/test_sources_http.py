"""The http source against a real HTTP server on 127.0.0.1 (a thread in this process)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest

from workbench.app import Workbench
from workbench.core.config import Settings
from workbench.core.home import ensure_home, ensure_secret_key
from workbench.runs.secrets import set_secret
from workbench.sources.errors import SourceError, SourceOptionError
from workbench.sources.http import HttpSource
from workbench.sources.ingest import ingest, to_pandas
from workbench.sources.secrets import using_workbench

TOKEN = "tok-" + "Zq8-http-s3cr3t" * 2
ROWS = [{"id": i, "carrier": c, "delay": {"minutes": i * 5}} for i, c in enumerate("ABCDE", 1)]


class Api(BaseHTTPRequestHandler):
    """A small paginated API with failure modes; state is per test (see ``api``)."""

    state: ClassVar[dict[str, Any]] = {}

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
        return

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def _json(self, payload: Any, status: int = 200, **headers: str) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", **headers)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        state = self.state
        state.setdefault("requests", []).append(self.path)
        state.setdefault("auth", []).append(self.headers.get("Authorization"))
        if url.path == "/pages":
            page = int(query.get("page", "1"))
            self._json(ROWS[(page - 1) * 2 : page * 2])
        elif url.path == "/cursor":
            after = int(query.get("after", "0"))
            rows = ROWS[after : after + 2]
            more = after + 2 < len(ROWS)
            self._json(
                {"data": rows, "links": {"next": f"/cursor?after={after + 2}" if more else None}}
            )
        elif url.path == "/linked":
            after = int(query.get("after", "0"))
            headers = {}
            if after + 3 < len(ROWS):
                headers["Link"] = (
                    f'<http://{self.headers["Host"]}/linked?after={after + 3}>; rel="next"'
                )
            self._json(ROWS[after : after + 3], **headers)
        elif url.path == "/flaky":
            state["flaky"] = state.get("flaky", 0) + 1
            if state["flaky"] == 1:
                self._json({"error": "temporarily broken"}, status=500)
            else:
                self._json(ROWS)
        elif url.path == "/down":
            self._json({"error": "down"}, status=503)
        elif url.path == "/slow":
            time.sleep(1.0)
            self._json(ROWS)
        elif url.path == "/malformed":
            self._send(200, b'[{"id": 1}, {"id": ', "application/json")
        elif url.path == "/csv":
            self._send(200, b"id,carrier\n1,AA\n2,\n", "text/csv")
        elif url.path == "/private":
            if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                self._json(ROWS)
            else:
                self._json({"error": "unauthorized"}, status=401)
        elif url.path == "/moved":
            self._send(301, b"", "text/plain", Location="/csv")
        elif url.path == "/object":
            self._json({"count": 5, "results": ROWS})
        else:
            self._json({"error": "not found"}, status=404)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def api(server: str) -> dict[str, Any]:
    Api.state = {}
    return Api.state


def _read(**options: Any) -> pd.DataFrame:
    return to_pandas(HttpSource().read(**options))


def test_page_number_pagination(server: str, api: dict[str, Any]) -> None:
    frame = _read(url=f"{server}/pages", pagination="page", params={"size": 2})
    assert frame["id"].tolist() == [1, 2, 3, 4, 5]
    assert frame["delay_minutes"].tolist() == [5, 10, 15, 20, 25]  # nested objects flattened
    assert api["requests"] == [f"/pages?size=2&page={n}" for n in (1, 2, 3, 4)]


def test_next_link_in_the_body(server: str, api: dict[str, Any]) -> None:
    frame = _read(url=f"{server}/cursor", pagination="next", records="data", next_key="links.next")
    assert frame["carrier"].tolist() == list("ABCDE")
    assert len(api["requests"]) == 3


def test_next_link_in_the_link_header(server: str, api: dict[str, Any]) -> None:
    frame = _read(url=f"{server}/linked", pagination="next")
    assert frame["id"].tolist() == [1, 2, 3, 4, 5]
    assert api["requests"] == ["/linked", "/linked?after=3"]


def test_max_pages_stops_an_endless_api(server: str, api: dict[str, Any]) -> None:
    with pytest.raises(SourceError, match="still more pages after max_pages=1;"):
        _read(url=f"{server}/linked", pagination="next", max_pages=1)
    assert len(_read(url=f"{server}/linked", pagination="next", max_pages=2)) == len(ROWS)


def test_a_500_is_retried_then_succeeds(server: str, api: dict[str, Any]) -> None:
    started = time.perf_counter()
    frame = _read(url=f"{server}/flaky", backoff=0.05)
    assert len(frame) == len(ROWS)
    assert api["flaky"] == 2
    assert time.perf_counter() - started >= 0.05  # it waited before retrying


def test_lasting_failure_names_the_url_and_attempts(server: str, api: dict[str, Any]) -> None:
    with pytest.raises(SourceError, match=r"GET http://127\.0\.0\.1:\d+/down answered HTTP 503"):
        _read(url=f"{server}/down", retries=2, backoff=0.01)
    assert len(api["requests"]) == 3


def test_timeout(server: str, api: dict[str, Any]) -> None:
    with pytest.raises(SourceError, match=r"/slow timed out after 0\.2 s \(2 attempts\)"):
        _read(url=f"{server}/slow", timeout=0.2, retries=1, backoff=0.01)


def test_malformed_json(server: str, api: dict[str, Any]) -> None:
    with pytest.raises(
        SourceError, match=r"GET http://127\.0\.0\.1:\d+/malformed returned malformed"
    ):
        _read(url=f"{server}/malformed")


def test_csv_pages(server: str, api: dict[str, Any]) -> None:
    frame = _read(url=f"{server}/csv", format="csv")
    assert frame["id"].tolist() == [1, 2]
    assert frame["carrier"].isna().tolist() == [False, True]


def test_redirects_are_followed_and_url_passwords_never_shown(
    server: str, api: dict[str, Any]
) -> None:
    assert _read(url=f"{server}/moved", format="csv")["id"].tolist() == [1, 2]
    with pytest.raises(SourceError) as error:
        _read(url=server.replace("://", "://robot:pw-in-url-77@") + "/down", retries=0)
    assert "pw-in-url-77" not in str(error.value)
    assert "/down answered HTTP 503" in str(error.value)


def test_an_object_needs_records(server: str, api: dict[str, Any]) -> None:
    with pytest.raises(
        SourceOptionError, match=r"records=KEY \(the object's keys: count, results\)"
    ):
        _read(url=f"{server}/object")
    assert len(_read(url=f"{server}/object", records="results")) == len(ROWS)


def test_a_refused_connection(api: dict[str, Any]) -> None:
    with pytest.raises(SourceError, match=r"127\.0\.0\.1:9/x could not connect"):
        _read(url="http://127.0.0.1:9/x", retries=0)


def test_options_are_checked() -> None:
    with pytest.raises(SourceOptionError, match="url"):
        _read(url="ftp://example.invalid/x")
    with pytest.raises(SourceOptionError, match="Option 'auth' must be a secret reference") as e:
        _read(url="http://127.0.0.1:9/x", auth=TOKEN)
    assert TOKEN not in str(e.value)


@pytest.fixture
def wb(settings: Settings, db_url: str) -> Iterator[Workbench]:
    ensure_home(settings)
    ensure_secret_key(settings)
    bench = Workbench(settings, db_url)
    set_secret(bench, "API_TOKEN", TOKEN)
    yield bench
    bench.close()


def test_auth_header_comes_from_the_secret_store_and_stays_secret(
    server: str, api: dict[str, Any], wb: Workbench, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with using_workbench(wb):
        frame = _read(url=f"{server}/private", auth="secret:API_TOKEN")
        assert len(frame) == len(ROWS)
        assert api["auth"] == [f"Bearer {TOKEN}"]
        with pytest.raises(SourceError) as refused:
            _read(url=f"{server}/private", auth="secret:API_TOKEN", auth_scheme="Token")
        with pytest.raises(SourceError) as failed:
            _read(url=f"{server}/down", auth="secret:API_TOKEN", retries=0)
    assert "401" in str(refused.value)
    for text in (str(refused.value), str(failed.value), caplog.text, repr(refused.value)):
        assert TOKEN not in text
        assert "s3cr3t" not in text
    assert caplog.records  # httpx did log the requests, without the header


def test_unknown_secret(server: str, api: dict[str, Any], wb: Workbench) -> None:
    with using_workbench(wb), pytest.raises(Exception, match="MISSING"):
        _read(url=f"{server}/private", auth="secret:MISSING")
    assert api.get("requests") is None  # nothing was sent without the credential


def test_ingest_on_both_databases_with_the_workbench_secret(
    wb: Workbench, server: str, api: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = ingest("http", "legs", workbench=wb, url=f"{server}/private", auth="secret:API_TOKEN")
    assert result.tables == {"legs": len(ROWS)}
    assert api["auth"] == [f"Bearer {TOKEN}"]
    back = wb.sql("SELECT id, carrier, delay_minutes FROM legs ORDER BY id")
    assert back["carrier"].tolist() == [r["carrier"] for r in ROWS]
    assert back["delay_minutes"].tolist() == [r["delay"]["minutes"] for r in ROWS]
    ingest("http", "legs", mode="append", workbench=wb, url=f"{server}/pages", pagination="page")
    assert wb.sql("SELECT count(*) AS n FROM legs")["n"].iloc[0] == 2 * len(ROWS)
    with pytest.raises(SourceError, match="malformed JSON"):
        ingest("http", "legs", mode="replace", workbench=wb, url=f"{server}/malformed")
    assert wb.sql("SELECT count(*) AS n FROM legs")["n"].iloc[0] == 2 * len(ROWS)
    assert TOKEN not in caplog.text
