"""The image (deploy/Dockerfile): linted, parsed and held to the contract the deployment files
rely on, since no image can be built here (a docker client, no daemon).

The contract: two stages from the Python the project is tested with; the package installed
from the repository's own pyproject; users workbench (10001) and wbkernel (10002); the entry
point `workbench` behind tini; WORKBENCH_HOME a folder of the volume; no secret in the image;
a health check that fails when /livez does; a build context that lets in only what it needs.
"""

from __future__ import annotations

import fnmatch
import http.server
import io
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from tests.deploy_rules import (
    BIN,
    DEPLOY,
    KERNEL_UID,
    KERNEL_USER,
    KNOWN_ENV,
    ROOT,
    SECRET_ENV,
    SECRETISH_NAME,
    SERVICE_UID,
)

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"


def _instructions(text: str | None = None) -> list[dict[str, Any]]:
    source = DOCKERFILE.read_text() if text is None else text
    parser = DockerfileParser(fileobj=io.BytesIO(source.encode()))
    return [i for i in parser.structure if i["instruction"] != "COMMENT"]


def _final_stage(instructions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    starts = [n for n, i in enumerate(instructions) if i["instruction"] == "FROM"]
    return instructions[starts[-1] :]


def _last(stage: list[dict[str, Any]], name: str) -> str:
    found = [i["value"] for i in stage if i["instruction"] == name]
    assert found, f"the final stage has no {name}"
    return str(found[-1])


def _env(stage: list[dict[str, Any]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in stage:
        if item["instruction"] == "ENV":
            for word in shlex.split(item["value"]):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def contract_problems(text: str) -> list[str]:
    """What in the Dockerfile ``text`` breaks the image's contract (empty when none)."""
    instructions = _instructions(text)
    problems: list[str] = []
    froms = [i["value"].split() for i in instructions if i["instruction"] == "FROM"]
    if len(froms) < 2:
        problems.append("not a multi-stage build: the build tools would stay in the image")
    args = {
        i["value"].partition("=")[0]: i["value"].partition("=")[2]
        for i in instructions
        if i["instruction"] == "ARG"
    }
    python = set()
    for words in froms:
        base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), words[0])
        match = re.fullmatch(r"python:(\d+\.\d+)-slim-bookworm", base)
        if base.startswith("python:") and match is None:
            problems.append(f"base {base} is not a pinned python:X.Y-slim-bookworm")
        if match:
            python.add(match.group(1))
    if python != {"3.11"}:
        problems.append(f"the Python of the image {sorted(python)} is not the tested 3.11")
    stage = _final_stage(instructions)
    users = [i["value"] for i in stage if i["instruction"] == "USER"]
    user = users[-1] if users else "root"
    if user != f"{SERVICE_UID}:{SERVICE_UID}":
        problems.append(f"the image's user is {user}, not {SERVICE_UID}:{SERVICE_UID}")
    entrypoint = json.loads(_last(stage, "ENTRYPOINT"))
    if entrypoint != ["tini", "--", "workbench"]:
        problems.append(f"the entry point {entrypoint} is not tini -- workbench")
    env = _env(stage)
    volumes = [json.loads(i["value"]) for i in stage if i["instruction"] == "VOLUME"]
    home = env.get("WORKBENCH_HOME", "")
    if not any(home.startswith(volume.rstrip("/") + "/") for (volume,) in volumes):
        problems.append("WORKBENCH_HOME is not a folder of the image's volume")
    for name, value in env.items():
        if name.startswith("WORKBENCH_") and name not in KNOWN_ENV:
            problems.append(f"{name} is not a setting Workbench reads")
        if name in SECRET_ENV or (SECRETISH_NAME.search(name) and value):
            problems.append(f"{name} puts a secret into the image")
    for item in instructions:
        if item["instruction"] == "ARG" and SECRETISH_NAME.search(item["value"]):
            problems.append(f"build argument {item['value']} would be kept in the image's history")
    runs = " ".join(i["value"] for i in stage if i["instruction"] == "RUN")
    for uid, user in ((SERVICE_UID, "workbench"), (KERNEL_UID, KERNEL_USER)):
        if not re.search(rf"useradd [^&]*--uid {uid} [^&]*\b{user}\b", runs):
            problems.append(f"no user {user} with UID {uid}")
    for package in ("tini", "postgresql-client"):
        if not re.search(rf"apt-get install [^&]*\b{package}\b", runs):
            problems.append(f"{package} is not installed")
    if not any(i["instruction"] == "HEALTHCHECK" for i in stage):
        problems.append("no health check")
    return problems


@pytest.mark.parametrize(
    "dockerfile", [DOCKERFILE, DEPLOY / "k8s" / "jupyterhub" / "Dockerfile.hub"], ids=str
)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    """The service image and the hub image extending zero-to-jupyterhub's."""
    done = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dockerfile_keeps_the_contract() -> None:
    assert contract_problems(DOCKERFILE.read_text()) == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("USER 10001:10001\n", "", "the image's user is root"),
        ("USER 10001:10001", "USER 0", "the image's user is 0"),
        ('["tini", "--", "workbench"]', '["workbench"]', "entry point"),
        ("python:3.11-slim-bookworm", "python:3.13-slim-bookworm", "not the tested 3.11"),
        ("python:3.11-slim-bookworm", "python:latest", "not a pinned"),
        ("WORKBENCH_ENV=production", "WORKBENCH_SECRET_KEY=abc", "puts a secret"),
        ("WORKBENCH_ENV=production", "WORKBENCH_SHINY=1", "not a setting"),
        ("WORKBENCH_ENV=production", "API_TOKEN=abc", "puts a secret"),
        ('VOLUME ["/var/lib/workbench"]', 'VOLUME ["/data"]', "not a folder of the image's"),
        ("WORKBENCH_HOME=/var/lib/workbench/home", "WORKBENCH_HOME=/var/lib/workbench", "not a"),
        ("--uid 10002", "--uid 1000", "no user wbkernel"),
        ("tini postgresql-client", "tini", "postgresql-client is not installed"),
        ("HEALTHCHECK", "# HEALTHCHECK", "no health check"),
        ("ARG PYTHON_IMAGE", "ARG DB_PASSWORD=x\nARG PYTHON_IMAGE", "build argument"),
    ],
)
def test_the_contract_catches_a_broken_copy(old: str, new: str, problem: str) -> None:
    text = DOCKERFILE.read_text()
    assert old in text
    problems = contract_problems(text.replace(old, new, 1))
    assert any(problem in p for p in problems), problems


def test_the_build_installs_the_wheel_of_this_project_with_an_extra_it_declares() -> None:
    runs = " ".join(i["value"] for i in _instructions() if i["instruction"] == "RUN")
    assert re.search(r"pip wheel [^&]*--no-deps [^&]*--wheel-dir /wheels \.(\s|$)", runs)
    assert "set -- /wheels/workbench-*.whl" in runs
    extras = re.findall(r'pip install [^&]*"\$1\[([\w,-]+)\]"', runs)
    assert extras, "the build does not install the wheel it built"
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for extra in extras[0].split(","):
        assert extra in declared["optional-dependencies"]


def test_the_hub_role_has_the_proxy_of_the_lock_file_on_a_node_it_supports() -> None:
    """`hub serve` needs configurable-http-proxy beside the image's Python: installed with
    `npm ci` from deploy/hub's lock file, on a Node.js its package accepts."""
    instructions = _instructions()
    runs = [i["value"] for i in instructions if i["instruction"] == "RUN"]
    assert any(re.search(r"\bnpm ci\b", run) for run in runs)
    copies = [i["value"] for i in instructions if i["instruction"] == "COPY"]
    assert "deploy/hub/package.json deploy/hub/package-lock.json ./" in copies
    final = " ".join(i["value"] for i in _final_stage(instructions))
    assert "--from=proxy /opt/proxy/node_modules" in final and "npm" not in final
    assert "configurable-http-proxy /opt/venv/bin/" in final  # where workbench hub looks
    node = next(
        i["value"].partition("=")[2] for i in instructions if i["value"].startswith("NODE_IMAGE=")
    )
    lock = json.loads((DEPLOY / "hub" / "package-lock.json").read_text())
    engines = lock["packages"]["node_modules/configurable-http-proxy"]["engines"]["node"]
    major = int(re.fullmatch(r"node:(\d+)\.\d+\.\d+-bookworm-slim", node).group(1))  # type: ignore[union-attr]
    assert major >= int(re.fullmatch(r">= ?(\d+)", engines).group(1))  # type: ignore[union-attr]


def test_the_image_ships_the_jupyterlab_extension_built_from_its_lock_file() -> None:
    """The build stage builds the extension (npm ci from labextension's lock file, inside
    scripts/build_labextension.sh) before the wheel that ships it, and checks it is installed."""
    runs = " ".join(i["value"] for i in _instructions() if i["instruction"] == "RUN")
    build = runs.index("bash scripts/build_labextension.sh")
    assert runs.index("pip wheel", build) > build  # the wheel is built again, after it
    assert "test -f /opt/venv/share/jupyter/labextensions/workbench-lab/package.json" in runs
    assert "npm ci" in (ROOT / "scripts" / "build_labextension.sh").read_text()
    assert (ROOT / "labextension" / "package-lock.json").exists()


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` (relative to the context) out: the last pattern that
    matches it or one of its parent folders decides, ``!`` letting it back in."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!")
        globs = [glob, glob.removeprefix("**/")] if glob.startswith("**/") else [glob]
        for prefix in prefixes:
            tails = ["/".join(prefix.split("/")[n:]) for n in range(len(prefix.split("/")))]
            candidates = tails if glob.startswith("**/") else [prefix]
            if any(fnmatch.fnmatchcase(c, g) for c in candidates for g in globs):
                ignored = not negated
                break
    return ignored


def _patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_the_build_context_lets_in_only_what_the_image_copies() -> None:
    patterns = _patterns()
    copied = [
        word
        for item in _instructions()
        if item["instruction"] == "COPY" and "--from=" not in item["value"]
        for word in item["value"].split()[:-1]
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not _ignored(source, patterns), f"COPY {source} is left out of the context"
    for kept_out in (
        ".git/config",
        ".venv/bin/python",
        ".env",
        "deploy/secrets/secret_key",
        "tests/conftest.py",
        "workbench/__pycache__/app.cpython-311.pyc",
        "notebooks/.ipynb_checkpoints/flights_kpis-checkpoint.ipynb",
        "workbench.db",
        "deploy/hub/node_modules/configurable-http-proxy/package.json",
        "labextension/node_modules/typescript/package.json",
        "labextension/dist/package.json",
    ):
        assert _ignored(kept_out, patterns), f"{kept_out} would enter the build context"


class _Livez(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/livez" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def livez() -> Iterator[tuple[int, type[_Livez]]]:
    handler = type("Handler", (_Livez,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def _healthcheck(port: int) -> int:
    value = _last(_final_stage(_instructions()), "HEALTHCHECK")
    command = json.loads(value[value.index("CMD") + 3 :])
    assert command[0] == "python"
    env = {**os.environ, "HEALTH_PORT": str(port)}
    return subprocess.run([sys.executable, *command[1:]], env=env, check=False).returncode


def test_the_health_check_passes_on_200_and_fails_on_503_or_silence(
    livez: tuple[int, type[_Livez]],
) -> None:
    port, handler = livez
    assert _healthcheck(port) == 0
    handler.status = 503
    assert _healthcheck(port) != 0
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        assert _healthcheck(closed.getsockname()[1]) != 0
