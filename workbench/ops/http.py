"""The health port of the scheduler and the worker: `/livez`, `/readyz` and `/metrics`.

A stdlib ``ThreadingHTTPServer`` in a daemon thread, started by ``--metrics-port``: it answers
while the service's own loop is busy or stuck, which is the point of a liveness probe.
`/livez` and `/readyz` answer 200 or 503 with a small JSON body (:mod:`workbench.ops.probes`);
``?verbose`` adds each check's detail, but only for callers on this machine (loopback): the
kubelet and everyone else learn ok or not and the names of the failed checks, never a URL, a
host, a version or an error text.

Every answer carries :data:`SECURITY_HEADERS`: nothing of it may be framed, sniffed as another
type, or run as a page (its CSP allows nothing), and it sends no referrer. The port speaks plain
HTTP only, so it never sends HSTS (:data:`HSTS` is for servers reached over TLS).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from workbench.ops import metrics
from workbench.ops.errors import HealthPortError
from workbench.ops.probes import Liveness, ProbeAnswer, Readiness

__all__ = [
    "BASE_HEADERS",
    "DEFAULT_HOST",
    "HSTS",
    "SECURITY_HEADERS",
    "HealthServer",
    "is_loopback",
    "wants_verbose",
]

log = logging.getLogger(__name__)

#: The health port listens on this machine only unless told otherwise (``--metrics-host``).
DEFAULT_HOST = "127.0.0.1"

Exposition = Callable[[], tuple[bytes, str]]

#: What every Workbench HTTP server sends with every answer: no type sniffing, and a referrer
#: only to its own pages (the dashboards server adds its own Content-Security-Policy).
BASE_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
#: HSTS for an answer sent over TLS (a year; browsers ignore it over plain HTTP anyway).
HSTS = ("Strict-Transport-Security", "max-age=31536000")
#: The health port's answers are JSON and text for probes and Prometheus, never a page.
SECURITY_HEADERS: dict[str, str] = {
    **BASE_HEADERS,
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}


def is_loopback(address: str) -> bool:
    """Whether a peer address is this machine (IPv4, IPv6, or IPv4 mapped into IPv6)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def wants_verbose(query: str) -> bool:
    """``?verbose``, ``?verbose=1`` or ``?verbose=true`` (not ``=0`` or ``=false``)."""
    values = parse_qs(query, keep_blank_values=True).get("verbose")
    if values is None:
        return False
    return values[-1].strip().lower() not in {"0", "false", "no"}


class HealthServer:
    """Serves the probes of one process on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        liveness: Liveness,
        readiness: Readiness,
        exposition: Exposition | None = metrics.exposition,
    ) -> None:
        self.liveness = liveness
        self.readiness = readiness
        self.exposition = exposition
        try:
            self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        except OSError as exc:
            readiness.close()
            raise HealthPortError(
                f"The health endpoints cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "choose another --metrics-port or --metrics-host."
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> HealthServer:
        self.readiness.prime()
        self._thread.start()
        host, port = self.address
        log.info("health endpoints on http://%s:%d (/livez, /readyz, /metrics)", host, port)
        return self

    def close(self) -> None:
        """Stop answering (the process is about to exit) and release the probes' resources."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
        self.readiness.close()


def _handler_for(server: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_ProbeHandler):
        health = server

    return Handler


class _ProbeHandler(BaseHTTPRequestHandler):
    health: HealthServer
    server_version = "workbench"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        url = urlsplit(self.path)
        verbose = wants_verbose(url.query) and is_loopback(self.client_address[0])
        if url.path == "/livez":
            self._probe(self.health.liveness.answer(), verbose, head)
        elif url.path == "/readyz":
            self._probe(self.health.readiness.answer(), verbose, head)
        elif url.path == "/metrics" and self.health.exposition is not None:
            body, content_type = self.health.exposition()
            self._send(200, body, content_type, head)
        else:
            self._send(404, b'{"status": "not found"}\n', "application/json", head)

    def _probe(self, answer: ProbeAnswer, verbose: bool, head: bool) -> None:
        body: dict[str, Any] = answer.body(verbose=verbose)
        data = (json.dumps(body) + "\n").encode()
        self._send(answer.status_code, data, "application/json", head)

    def _send(self, code: int, body: bytes, content_type: str, head: bool) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("health %s - %s", self.address_string(), format % args)
