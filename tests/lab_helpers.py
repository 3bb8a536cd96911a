"""A real `workbench lab` for tests: started as a user would, reached over HTTP and the
kernels' websocket, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.world import free_port
from tests.runs_helpers import family

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Lab:
    process: subprocess.Popen[bytes]
    base: str
    token: str
    log: Path
    env: dict[str, str]
    descendants: list[tuple[int, float]] = field(default_factory=list)

    def get(self, path: str, *, token: bool = True) -> httpx.Response:
        headers = {"Authorization": f"token {self.token}"} if token else {}
        return httpx.get(self.base + path, headers=headers, timeout=30, follow_redirects=False)

    def execute(self, code: str, timeout: float = 60) -> str:
        """Run ``code`` in a new kernel of the server (over its websocket); its stdout."""
        import websocket

        started = httpx.post(
            self.base + "/api/kernels",
            headers={"Authorization": f"token {self.token}"},
            json={"name": "python3"},
            timeout=30,
        )
        started.raise_for_status()
        kernel = started.json()["id"]
        url = self.base.replace("http://", "ws://") + f"/api/kernels/{kernel}/channels"
        ws = websocket.create_connection(
            url, header=[f"Authorization: token {self.token}"], timeout=timeout
        )
        msg_id = uuid.uuid4().hex
        ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "test",
                        "session": uuid.uuid4().hex,
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False, "store_history": False},
                    "channel": "shell",
                }
            )
        )
        out: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                message: dict[str, Any] = json.loads(ws.recv())
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = message["header"]["msg_type"]
                if kind == "stream":
                    out.append(message["content"]["text"])
                elif kind == "error":
                    out.append("\n".join(message["content"]["traceback"]))
                elif kind == "status" and message["content"]["execution_state"] == "idle":
                    return "".join(out)
        finally:
            ws.close()
        raise AssertionError(f"the kernel did not finish: {''.join(out)}")

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; the exit code."""
        self.descendants = family(self.process.pid)
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def lab_env(home: Path, jupyter: Path, **extra: str) -> dict[str, str]:
    """The environment of a user starting `workbench lab`: their home, Jupyter's folders of
    their own (not this machine's), nothing else of Workbench's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "JUPYTER"))}
    env.update(
        WORKBENCH_HOME=str(home),
        JUPYTER_CONFIG_DIR=str(jupyter / "config"),
        JUPYTER_DATA_DIR=str(jupyter / "data"),
        JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"),
        WORKBENCH_WARM_WORKER_IDLE_SECONDS="0",  # no warm worker left behind by a test's run
    )
    env.update(extra)
    return env


def start_lab(
    env: dict[str, str],
    workdir: Path,
    folder: Path = ROOT,
    *,
    plain: bool = False,
    base_url: str = "/",
) -> Lab:
    """`workbench lab --no-browser` on a free port (``plain``: a plain `jupyter server`, the
    extension enabled by the environment's configuration, under ``base_url`` as a hub's server
    is); returns once the API answers."""
    port = free_port()
    token = secrets.token_hex(24)
    log = workdir / f"lab-{port}.log"
    if plain:
        command = ["-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}",
                   "--ServerApp.port_retries=0", f"--ServerApp.root_dir={folder}",
                   f"--ServerApp.base_url={base_url}"]  # fmt: skip
    else:
        command = ["-m", "workbench", "lab", "--no-browser", "--allow-root", "--port",
                   str(port), str(folder)]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *command], env={**env, "JUPYTER_TOKEN": token}, cwd=workdir,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    lab = Lab(process, f"http://127.0.0.1:{port}{base_url.rstrip('/')}", token, log, env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("workbench lab exited:\n" + log.read_text())
        try:
            if lab.get("/workbench/api/whoami").status_code in {200, 503}:
                return lab
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("workbench lab did not answer:\n" + log.read_text())
