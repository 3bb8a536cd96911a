"""A warm worker for the command line: `workbench runs serve` and the client `workbench run` uses.

The server keeps a :class:`~workbench.runs.api.Worker` (fresh kernels started ahead) and
listens on a Unix socket in the home folder (owner-only), named after the database, so a
`workbench run` for the same database hands its run over and skips kernel start-up. The
protocol is one JSON request line, then JSON lines: ``progress``, then ``run`` or ``error``.
A `workbench run` that found no worker starts one in the background
(:func:`start_in_background`), which exits after ``WORKBENCH_WARM_WORKER_IDLE_SECONDS``
without a run; a lock file held for the server's life keeps it to one per database.
This module imports nothing heavy, so the client side stays fast.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from workbench.core.config import Settings
from workbench.runs.errors import WarmWorkerRunningError

__all__ = [
    "Outcome", "outcome", "request_run", "serve", "socket_path", "start_in_background",
]  # fmt: skip

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


def _lock(settings: Settings) -> IO[bytes] | None:
    """The held lock of this database's warm worker, or None when another process holds it."""
    path = socket_path(settings).with_suffix(".lock")
    handle = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "rb+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def start_in_background(settings: Settings) -> bool:
    """Start `workbench runs serve` for this database, detached and with the caller's own
    settings, unless one runs or the setting is 0; whether one was started. Its log is
    ``worker-<digest>.log`` beside its socket (owner-only)."""
    idle = settings.warm_worker_idle_seconds
    if idle <= 0:
        return False
    probe = _lock(settings)
    if probe is None:  # a worker serves (or is starting)
        return False
    probe.close()  # the worker takes the lock itself; a second one started meanwhile exits
    log = os.open(
        socket_path(settings).with_suffix(".log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
    )
    try:
        subprocess.Popen(  # noqa: S603 (this interpreter and package, no shell)
            [sys.executable, "-m", "workbench", "runs", "serve", "--idle-seconds", f"{idle:g}",
             "--background"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    finally:
        os.close(log)
    return True


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


class _Activity:
    """Runs in progress and when the last one ended, for the idle exit."""

    def __init__(self) -> None:
        self.busy, self.since = 0, time.monotonic()
        self.lock = threading.Lock()

    def begin(self) -> None:
        with self.lock:
            self.busy += 1

    def end(self) -> None:
        with self.lock:
            self.busy, self.since = self.busy - 1, time.monotonic()

    def idle_for(self) -> float:
        with self.lock:
            return 0.0 if self.busy else time.monotonic() - self.since


def serve(
    settings: Settings, size: int = 2, *, idle_seconds: float = 0, background: bool = False
) -> None:
    """Serve runs on warm kernels until interrupted, or until ``idle_seconds`` (when over 0)
    pass without a run. Another worker serving this database is an error, or (``background``)
    a quiet return."""
    lock = _lock(settings)
    if lock is None:
        if background:
            return
        raise WarmWorkerRunningError(
            f"A warm worker already serves this database on {socket_path(settings)}: "
            "`workbench run` hands its runs to it."
        )
    from workbench.runs import execute, html  # noqa: F401 - imported now, not on a first run
    from workbench.runs.api import Worker

    path = socket_path(settings)
    path.unlink(missing_ok=True)  # a dead worker's (it no longer holds the lock)
    activity = _Activity()
    with lock, Worker(size) as worker:

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request = json.loads(self.rfile.readline())

                def send(message: dict[str, Any]) -> None:
                    self.wfile.write(json.dumps(message).encode("utf-8") + b"\n")
                    self.wfile.flush()

                activity.begin()
                try:
                    _handle(worker, request, send)
                finally:
                    activity.end()

        old = os.umask(0o177)  # the socket is the owner's only
        try:
            server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        finally:
            os.umask(old)
        signal.signal(signal.SIGTERM, _stop)
        if idle_seconds > 0:
            threading.Thread(
                target=_exit_when_idle, args=(server, path, activity, idle_seconds), daemon=True
            ).start()
        try:
            server.serve_forever()
        finally:
            server.server_close()
            path.unlink(missing_ok=True)


def _exit_when_idle(
    server: socketserver.BaseServer, path: Path, activity: _Activity, idle: float
) -> None:
    """Stop serving after ``idle`` seconds without a run: the socket goes first, so no new
    client connects, and a client that connected just before is still served."""
    while activity.idle_for() < idle:
        time.sleep(min(1.0, idle / 10))
    path.unlink(missing_ok=True)
    time.sleep(0.5)  # the loop accepts what connected before the socket went
    server.shutdown()  # then closing the server waits for the runs it accepted
