"""The analysts' hub on Kubernetes (deploy/k8s/jupyterhub/): zero-to-jupyterhub values that use
the Workbench authenticator, and the hub image that carries it. No cluster or chart here, so
the files are linted, parsed and held to who-holds-what: the hub reads the master key and the
service's login as files; an analyst's server gets neither, only the login the hub hands it.
"""

from __future__ import annotations

import copy
import io
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.version import Version

from tests.deploy_rules import DEPLOY, KNOWN_ENV, ROOT, SECRET_ENV, SECRET_KEYS, SERVICE_UID
from workbench.hub.authenticator import WorkbenchAuthenticator

HUB = DEPLOY / "k8s" / "jupyterhub"
VALUES = HUB / "values.yaml"
HUB_DOCKERFILE = HUB / "Dockerfile.hub"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: What JupyterHub the chart's hub image carries (its changelog: 4.4.0 upgrades it to 5.5.0).
CHART_HUBS = {"4.4.0": Version("5.5.0")}


def _values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(VALUES.read_text())
    return loaded


def _image_env() -> dict[str, str]:
    parser = DockerfileParser(fileobj=io.BytesIO((DEPLOY / "Dockerfile").read_bytes()))
    return dict(parser.envs)


def _overlay_image() -> str:
    overlay = yaml.safe_load((DEPLOY / "k8s" / "overlays" / "example" / "kustomization.yaml")
                             .read_text())  # fmt: skip
    (image,) = [i for i in overlay["images"] if i["name"] == "workbench"]
    return str(image["newName"])


def hub_values_problems(values: dict[str, Any]) -> list[str]:
    """How ``values`` strays from the hub's contract (empty when it keeps it)."""
    problems: list[str] = []
    hub, single = values["hub"], values["singleuser"]
    config = hub.get("config", {})
    declared = PYPROJECT["project"]["entry-points"]["jupyterhub.authenticators"]
    if config.get("JupyterHub", {}).get("authenticator_class") not in declared:
        problems.append("the hub does not sign in with the Workbench authenticator")
    if config.get("JupyterHub", {}).get("admin_access", True):
        problems.append("hub admins could open other analysts' servers (admin_access)")
    credentials = config.get("WorkbenchAuthenticator", {}).get("credentials")
    if credentials != "environment":
        problems.append(f"credentials {credentials!r}: a pod cannot read the hub's files")
    elif credentials not in WorkbenchAuthenticator.credentials.values:
        problems.append(f"credentials {credentials!r} is not a value the authenticator takes")
    mounted = {m["mountPath"] for m in hub.get("extraVolumeMounts", [])}
    for name, value in hub.get("extraEnv", {}).items():
        if name.startswith("WORKBENCH_") and name not in KNOWN_ENV:
            problems.append(f"hub: {name} is not a setting Workbench reads")
        if name in SECRET_ENV:
            problems.append(f"hub: {name} is a secret given as a value, not as a file")
        if name.endswith("_FILE") and not any(str(value).startswith(m + "/") for m in mounted):
            problems.append(f"hub: {name} points outside the mounted secret")
    for volume in hub.get("extraVolumes", []):
        for item in volume.get("secret", {}).get("items", []):
            if item["key"] not in SECRET_KEYS:
                problems.append(f"hub: the secret has no key {item['key']}")
    for name in single.get("extraEnv", {}):
        if name in SECRET_ENV or name.endswith("_FILE") or "DATABASE" in name:
            problems.append(f"singleuser: {name} would hand a server a secret of the service")
    volumes = single.get("storage", {}).get("extraVolumes") or []
    if any("secret" in volume for volume in volumes) or "extraVolumes" in single:
        problems.append("singleuser: a server mounts a volume of the service's")
    if single.get("cmd") != ["hub", "singleuser"]:
        problems.append("singleuser: the server does not start through `workbench hub singleuser`")
    if single.get("uid") != SERVICE_UID:
        problems.append(f"singleuser: uid {single.get('uid')} is not the image's {SERVICE_UID}")
    if single.get("image", {}).get("name") != _overlay_image():
        problems.append("singleuser: not the Workbench image the cluster runs")
    if single.get("storage", {}).get("homeMountPath") != _image_env()["WORKBENCH_HOME"]:
        problems.append("singleuser: the home volume is not the image's WORKBENCH_HOME")
    ports = {
        port["port"]
        for rule in single.get("networkPolicy", {}).get("egress", [])
        for port in rule.get("ports", [])
    }
    if ports != {5432}:
        problems.append(f"singleuser: egress to {sorted(ports)}, not PostgreSQL only")
    return problems


def test_the_values_keep_the_hubs_contract() -> None:
    assert hub_values_problems(_values()) == []


def _set(values: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    changed = copy.deepcopy(values)
    *parents, last = path.split(".")
    node = changed
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("hub.config.JupyterHub.authenticator_class", "dummy", "Workbench authenticator"),
        ("hub.config.JupyterHub.admin_access", True, "admin_access"),
        ("hub.config.WorkbenchAuthenticator.credentials", "file", "cannot read the hub's"),
        ("hub.extraEnv.WORKBENCH_SECRET_KEY", "k" * 40, "given as a value"),
        ("hub.extraEnv.WORKBENCH_DATABASE_URL_FILE", "/etc/url", "outside the mounted"),
        ("singleuser.extraEnv.WORKBENCH_SECRET_KEY_FILE", "/etc/k", "secret of the service"),
        ("singleuser.extraEnv.WORKBENCH_DATABASE_URL", "postgresql://s/x", "secret of the"),
        ("singleuser.extraVolumes", [{"name": "s", "secret": {}}], "mounts a volume"),
        ("singleuser.cmd", "jupyterhub-singleuser", "workbench hub singleuser"),
        ("singleuser.uid", 1000, "uid 1000"),
        ("singleuser.image.name", "quay.io/jupyter/base-notebook", "not the Workbench image"),
        ("singleuser.networkPolicy.egress", [{"ports": [{"port": 6379}]}], "not PostgreSQL"),
    ],
)
def test_the_contract_catches_a_broken_copy(path: str, value: object, problem: str) -> None:
    problems = hub_values_problems(_set(_values(), path, value))
    assert any(problem in p for p in problems), problems


def test_the_servers_command_exists() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "workbench", *_values()["singleuser"]["cmd"], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_hub_image_extends_the_charts_hub_with_this_wheel() -> None:
    """The chart named in values.yaml is the hub image's, and pip keeps that image's JupyterHub
    (the hub extra's floor is at most the chart's)."""
    text = HUB_DOCKERFILE.read_text()
    chart = re.search(r"zero-to-jupyterhub \(chart (\d+\.\d+\.\d+)", VALUES.read_text())
    assert chart is not None
    assert f"ARG HUB_IMAGE=quay.io/jupyterhub/k8s-hub:{chart.group(1)}\n" in text
    (hub_requirement,) = [
        Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["hub"]
    ]
    floor = next(Version(s.version) for s in hub_requirement.specifier if s.operator == ">=")
    assert floor <= CHART_HUBS[chart.group(1)]
    assert re.search(r'pip install [^&]*"\$1\[hub\]"', text)
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in text
    # Its build context is the main image's: the same ignore file.
    ignore = HUB / "Dockerfile.hub.dockerignore"
    assert ignore.resolve() == (DEPLOY / "Dockerfile.dockerignore").resolve()
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    copied = [
        word
        for item in parser.structure
        if item["instruction"] == "COPY" and "--from=" not in item["value"]
        for word in item["value"].split()[:-1]
    ]
    assert copied and all((ROOT / source).exists() for source in copied)


def test_the_values_file_is_named_in_the_docs() -> None:
    docs = (ROOT / "docs" / "deployment.md").read_text()
    assert str(VALUES.relative_to(ROOT)) in docs
    assert str(Path(HUB_DOCKERFILE).relative_to(ROOT)) in docs
