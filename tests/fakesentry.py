"""A local HTTP server standing in for Sentry, and what it received, decoded.

The DSN of a server (``http://public@127.0.0.1:PORT/1``) makes sentry-sdk post its envelopes
to ``/api/1/envelope/`` there; :func:`events` decodes them (gzip) and returns the events,
:func:`raw_bytes` everything received, for searching it for secrets.
"""

from __future__ import annotations

import gzip
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.httpserver import LocalServer, Received

ENVELOPE_PATH = "/api/1/envelope/"


def dsn(server: LocalServer) -> str:
    """The DSN that points sentry-sdk at ``server``."""
    return server.url.replace("http://", "http://public@") + "/1"


def token(prefix: str) -> str:
    """A fresh secret value, easy to search for."""
    return f"{prefix}-{secrets.token_hex(16)}"


def decoded(request: Received) -> bytes:
    encoding = request.headers.get("Content-Encoding", "").lower()
    if encoding == "gzip":
        return gzip.decompress(request.body)
    if encoding == "br":
        brotli = pytest.importorskip("brotli")
        return bytes(brotli.decompress(request.body))
    assert encoding in ("", "identity"), encoding
    return request.body


def items(data: bytes) -> Iterator[tuple[str, bytes]]:
    """The (type, payload) items of one Sentry envelope."""
    _, _, rest = data.partition(b"\n")
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        header = json.loads(line)
        length = header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length + 1 :]
        yield header.get("type", ""), payload


def events(server: LocalServer) -> list[dict[str, Any]]:
    """Every event ``server`` received, in order."""
    found = []
    for request in server.received:
        assert request.path.startswith(ENVELOPE_PATH), request.path
        found += [json.loads(p) for kind, p in items(decoded(request)) if kind == "event"]
    return found


def raw_bytes(server: LocalServer) -> bytes:
    """Everything ``server`` received: paths, headers and decoded bodies."""
    parts = []
    for request in server.received:
        parts += [request.path.encode(), json.dumps(request.headers).encode(), decoded(request)]
    return b"\n".join(parts)


def assert_no_secret(server: LocalServer, values: dict[str, str]) -> None:
    received = raw_bytes(server)
    assert received, "nothing was received"
    for name, value in values.items():
        assert value.encode() not in received, f"the {name} was sent"
