"""A warm worker for the command line: `workbench runs serve` and the client `workbench run` uses.

The server keeps a :class:`~workbench.runs.api.Worker` (fresh kernels started ahead) and
listens on a Unix socket in the home folder (owner-only), named after the database, so a
`workbench run` for the same database hands its run over and skips kernel start-up. The
protocol is one JSON request line, then JSON lines: ``progress``, then ``run`` or ``error``.
This module imports nothing heavy, so the client side stays fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import socketserver
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.core.config import Settings

__all__ = ["Outcome", "outcome", "request_run", "serve", "socket_path"]

Outcome = dict[str, Any]
_RUN_FIELDS = (
    "id", "status", "duration", "progress_cell", "progress_total", "output_uri",
    "error_name", "error_message", "error_cell",
)  # fmt: skip


def outcome(run: Any) -> Outcome:
    """The fields of a finished run the command line prints, as JSON-able values."""
    record = {name: getattr(run, name) for name in _RUN_FIELDS}
    record["id"], record["status"] = str(run.id), run.status.value
    return record


def socket_path(settings: Settings, database_url: str | None = None) -> Path:
    """Where the worker for this home and database listens."""
    url = database_url or settings.effective_database_url()
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return settings.home_path / f"worker-{digest}.sock"


def request_run(
    settings: Settings, request: dict[str, Any], on_progress: Callable[[int, int], None]
) -> Outcome | None:
    """Hand a run to a warm worker; its outcome, or None when no worker is listening."""
    path = socket_path(settings)
    if not path.exists():
        return None
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(path))
    except OSError:
        client.close()
        return None
    with client, client.makefile("rwb") as stream:
        stream.write(json.dumps(request).encode("utf-8") + b"\n")
        stream.flush()
        for line in stream:
            message = json.loads(line)
            if "progress" in message:
                on_progress(*message["progress"])
            else:
                return dict(message)
    return {"error": "The warm worker closed the connection.", "exit_code": 1}


def _handle(worker: Any, request: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> None:
    from workbench.core.errors import WorkbenchError
    from workbench.runs.api import notebook_params, queue_run
    from workbench.runs.execute import execute_run

    try:
        # The command line checked the values against the notebook already; as JSON (dates as
        # ISO text) they are checked once more, as any caller's values are.
        given: dict[str, Any] = request.get("values") or {}
        values = notebook_params(request["notebook"]).validate(given) if given else {}
        run_id = queue_run(
            request["notebook"], values,
            timeout=request.get("timeout"),
            triggered_by="cli", owner=request.get("owner"), team=request.get("team"),
            workbench=worker.workbench,
        )  # fmt: skip
        run = execute_run(
            run_id, workbench=worker.workbench, kernels=worker.kernels,
            cell_timeout=request.get("cell_timeout"),
            on_progress=lambda _run, cell, total: send({"progress": [cell, total]}),
        )  # fmt: skip
    except WorkbenchError as exc:
        send({"error": str(exc), "exit_code": exc.exit_code})
        return
    send({"run": outcome(run)})


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the server like Ctrl-C: socket removed, kernels shut


def serve(settings: Settings, size: int = 2) -> None:
    """Serve runs on warm kernels until interrupted."""
    from workbench.runs import execute, html  # noqa: F401 - imported now, not on a first run
    from workbench.runs.api import Worker

    path = socket_path(settings)
    path.unlink(missing_ok=True)
    with Worker(size) as worker:

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request = json.loads(self.rfile.readline())

                def send(message: dict[str, Any]) -> None:
                    self.wfile.write(json.dumps(message).encode("utf-8") + b"\n")
                    self.wfile.flush()

                _handle(worker, request, send)

        old = os.umask(0o177)  # the socket is the owner's only
        try:
            server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        finally:
            os.umask(old)
        signal.signal(signal.SIGTERM, _stop)
        try:
            server.serve_forever()
        finally:
            server.server_close()
            path.unlink(missing_ok=True)
