"""The Kubernetes manifests (deploy/k8s): they render, validate, and follow the deployment rules.

`kubectl kustomize` renders the base and the overlays offline; `kubernetes-validate --strict`
checks every built-in kind against its schema (the KEDA objects have no schema there, so their
fields are checked here by hand); the policy checks run on the rendered objects. `kubectl` is
skipped when it is missing, a failure with CI=true.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from workbench.core.config import SECRET_FIELDS, Settings
from workbench.db.models import Run, RunStatus

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BIN = Path(sys.executable).parent
BASE, EXAMPLE, KEDA = "base", "overlays/example", "overlays/keda"
CRD_KINDS = {"ScaledObject", "TriggerAuthentication"}
POD_KINDS = {"Deployment", "Job", "CronJob"}
#: The keys of the Secret workbench-secrets: the files `workbench deploy secrets DIR` writes.
SECRET_KEYS = {"secret_key", "postgres_password", "database_url"}
KNOWN_ENV = {f"WORKBENCH_{name.upper()}" for name in Settings.model_fields} | {
    f"WORKBENCH_{name.upper()}_FILE" for name in SECRET_FIELDS
}
SECRET_ENV = {f"WORKBENCH_{name.upper()}" for name in SECRET_FIELDS}
SECRETISH_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY($|_)|DSN|CREDENTIAL", re.I)
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.I)


def _kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kubectl is not installed (CI=true: the manifests must be rendered)")
        pytest.skip("kubectl is not installed")
    return path


@functools.cache
def _render_text(overlay: str) -> str:
    done = subprocess.run(
        [_kubectl(), "kustomize", str(K8S / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def render(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(_render_text(overlay)) if doc]


def _by(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


# -- the policy --------------------------------------------------------------------------------


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(obj["spec"]["template"]["spec"])


def _containers(spec: dict[str, Any]) -> Iterator[tuple[dict[str, Any], bool]]:
    """Every container of a pod spec, with whether it is an init container."""
    for container in spec.get("initContainers", []):
        yield container, True
    for container in spec.get("containers", []):
        yield container, False


def _secret_mounts(spec: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """The mount paths of the container's volumes that come from a Secret."""
    secret_volumes = {
        v["name"]
        for v in spec.get("volumes", [])
        if "secret" in v or any("secret" in s for s in v.get("projected", {}).get("sources", []))
    }
    return [
        m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in secret_volumes
    ]


def _check_security(where: str, container: dict[str, Any]) -> list[str]:
    ctx = container.get("securityContext", {})
    wanted = {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
    }
    problems = [
        f"{where}: securityContext.{key} is {ctx.get(key)!r}, not {value!r}"
        for key, value in wanted.items()
        if ctx.get(key) != value
    ]
    if ctx.get("capabilities", {}).get("drop") != ["ALL"] or ctx["capabilities"].get("add"):
        problems.append(f"{where}: capabilities must drop ALL and add none")
    if ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    return problems


def _check_resources(where: str, container: dict[str, Any]) -> list[str]:
    resources = container.get("resources", {})
    return [
        f"{where}: no {part}.{what}"
        for part in ("requests", "limits")
        for what in ("cpu", "memory")
        if what not in resources.get(part, {})
    ]


def _check_probes(where: str, container: dict[str, Any]) -> list[str]:
    ports = {p.get("name") for p in container.get("ports", [])} | {
        p["containerPort"] for p in container.get("ports", [])
    }
    problems = []
    for probe, path in (
        ("startupProbe", "/livez"),
        ("livenessProbe", "/livez"),
        ("readinessProbe", "/readyz"),
    ):
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != path:
            problems.append(f"{where}: {probe} does not GET {path}")
        elif get.get("port") not in ports:
            problems.append(f"{where}: {probe} port {get.get('port')!r} is not a container port")
    return problems


def _check_env(where: str, spec: dict[str, Any], container: dict[str, Any]) -> list[str]:
    problems = []
    if container.get("envFrom"):
        problems.append(f"{where}: envFrom hides which variables are set; list them in env")
    mounts = _secret_mounts(spec, container)
    for var in container.get("env", []):
        name, value = var["name"], var.get("value")
        if name.startswith("WORKBENCH_") and name not in KNOWN_ENV:
            problems.append(f"{where}: {name} is not a Workbench setting")
        if name in SECRET_ENV:
            problems.append(f"{where}: {name} is a secret; give it as {name}_FILE")
        if value is None:
            continue
        if name.endswith("_FILE"):
            if not any(str(value).startswith(m.rstrip("/") + "/") for m in mounts):
                problems.append(f"{where}: {name} points at {value!r}, not into a Secret mount")
        elif SECRETISH_NAME.search(name) or URL_WITH_PASSWORD.search(str(value)):
            problems.append(f"{where}: {name} holds a literal secret")
    return problems


def _check_volumes(where: str, spec: dict[str, Any], container: dict[str, Any]) -> list[str]:
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    kinds = {m["mountPath"]: volumes.get(m["name"], {}) for m in container.get("volumeMounts", [])}
    problems = []
    if "emptyDir" not in kinds.get("/tmp", {}):  # noqa: S108 (a mount path)
        problems.append(f"{where}: /tmp is not an emptyDir")
    home = kinds.get("/var/lib/workbench", {})
    if "emptyDir" not in home and "persistentVolumeClaim" not in home:
        problems.append(f"{where}: /var/lib/workbench is neither a PVC nor an emptyDir")
    return problems


def policy_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Every way the rendered objects break the deployment rules (empty: none)."""
    problems: list[str] = []
    for obj in objects:
        if obj["kind"] not in POD_KINDS:
            continue
        spec = _pod_spec(obj)
        long_running = obj["kind"] == "Deployment"
        if long_running and not spec.get("initContainers"):
            problems.append(f"{obj['metadata']['name']}: no init container waits for migrations")
        for container, is_init in _containers(spec):
            where = f"{obj['kind']}/{obj['metadata']['name']}/{container['name']}"
            problems += _check_security(where, container)
            problems += _check_resources(where, container)
            problems += _check_env(where, spec, container)
            problems += _check_volumes(where, spec, container)
            if long_running and not is_init:
                problems += _check_probes(where, container)
            if "command" in container:
                problems.append(f"{where}: sets command; the image's entry point is workbench")
        for volume in spec.get("volumes", []):
            sources = [volume.get("secret")] + [
                s.get("secret") for s in volume.get("projected", {}).get("sources", [])
            ]
            for source in filter(None, sources):
                keys = {item["key"] for item in source.get("items", [])}
                if not source.get("items") or not keys <= SECRET_KEYS:
                    problems.append(f"{obj['metadata']['name']}: secret keys {sorted(keys)}")
    return problems


def invocations(objects: list[dict[str, Any]]) -> set[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each container's (CLI verb, its --flags), from its args."""
    found = set()
    for obj in objects:
        if obj["kind"] in POD_KINDS:
            for container, _ in _containers(_pod_spec(obj)):
                args = [str(a) for a in container.get("args", [])]
                first = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
                flags = tuple(a for a in args if a.startswith("--"))
                found.add((tuple(args[:first]), flags))
    return found


# -- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", [BASE, EXAMPLE, KEDA])
def test_renders_and_validates_strictly(overlay: str, tmp_path: Path) -> None:
    objects = render(overlay)
    builtin = [o for o in objects if o["kind"] not in CRD_KINDS]
    out = tmp_path / "rendered.yaml"
    out.write_text(yaml.safe_dump_all(builtin))
    done = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "--quiet", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARN" not in done.stdout + done.stderr  # every built-in kind had a schema
    assert len(builtin) >= 12


def test_base_applies_without_keda_and_scales_with_an_hpa() -> None:
    for overlay in (BASE, EXAMPLE):
        objects = render(overlay)
        assert not [o for o in objects if o["kind"] in CRD_KINDS]
        hpa = _by(objects, "HorizontalPodAutoscaler", "workbench-worker")
        assert hpa["spec"]["scaleTargetRef"]["name"] == "workbench-worker"
        assert _by(objects, "Deployment", "workbench-worker")


def test_keda_scales_workers_on_queued_and_running_runs() -> None:
    objects = render(KEDA)
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    scaled = _by(objects, "ScaledObject", "workbench-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    target = scaled["spec"]["scaleTargetRef"]
    assert _by(objects, "Deployment", target["name"])
    assert scaled["spec"]["minReplicaCount"] >= 1
    assert scaled["spec"]["maxReplicaCount"] > scaled["spec"]["minReplicaCount"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    meta = trigger["metadata"]
    assert all(isinstance(v, str) for v in meta.values())  # KEDA metadata is a string map
    assert "password" not in meta and "connection" not in meta
    query = re.sub(r"\s+", " ", meta["query"])
    assert f"FROM {Run.__tablename__} " in query + " "
    statuses = set(re.findall(r"'([a-z_]+)'", query))
    assert statuses == {RunStatus.QUEUED.value, RunStatus.RUNNING.value}
    assert float(meta["targetQueryValue"]) > 0
    auth = _by(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    assert auth["metadata"]["namespace"] == scaled["metadata"]["namespace"] == "workbench"
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref == {"parameter": "password", "name": "workbench-secrets", "key": "postgres_password"}


def test_yamllint() -> None:
    config = ROOT / "deploy" / ".yamllint.yaml"
    args = (
        ["-c", str(config)]
        if config.is_file()
        else [
            "-d",
            "{extends: default, rules: {document-start: disable, line-length: {max: 100}}}",
        ]
    )
    done = subprocess.run(
        [str(BIN / "yamllint"), "-s", *args, str(K8S)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("overlay", [BASE, EXAMPLE, KEDA])
def test_policy(overlay: str) -> None:
    objects = render(overlay)
    assert policy_problems(objects) == []
    kinds = {o["kind"] for o in objects}
    assert {"Job", "CronJob", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    names = {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"}
    assert names == {"workbench-scheduler", "workbench-worker", "workbench-dashboards"}


def test_scheduler_has_a_disruption_budget_and_scrape_annotations() -> None:
    objects = render(BASE)
    pdb = _by(objects, "PodDisruptionBudget", "workbench-scheduler")
    scheduler = _by(objects, "Deployment", "workbench-scheduler")
    labels = scheduler["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < scheduler["spec"]["replicas"]
    for name in ("workbench-scheduler", "workbench-worker"):
        template = _by(objects, "Deployment", name)["spec"]["template"]
        notes = template["metadata"]["annotations"]
        assert notes["prometheus.io/scrape"] == "true"
        (container,) = template["spec"]["containers"]
        assert int(notes["prometheus.io/port"]) in {p["containerPort"] for p in container["ports"]}
        args = container["args"]
        assert args[args.index("--metrics-port") + 1] == notes["prometheus.io/port"]


def test_images_base_latest_and_overlay_pinned() -> None:
    def images(overlay: str) -> set[str]:
        return set(re.findall(r"^\s*image: (\S+)$", _render_text(overlay), re.M))

    assert images(BASE) == {"workbench:latest"}
    (pinned,) = images(EXAMPLE)
    assert not pinned.endswith(":latest") and ":" in pinned


def test_every_container_runs_a_real_cli_verb_with_real_flags() -> None:
    calls = invocations(render(KEDA))
    verbs = {verb for verb, _ in calls}
    assert ("db", "upgrade") in verbs and ("db", "check-migrations") in verbs
    assert {("scheduler",), ("worker",), ("dashboards", "serve"), ("backup", "create")} <= verbs
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    for verb in verbs:
        done = subprocess.run(
            [sys.executable, "-m", "workbench", *verb, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )
        assert done.returncode == 0, (verb, done.stdout + done.stderr)
        for _, flags in (c for c in calls if c[0] == verb):
            for flag in flags:
                assert re.search(rf"{re.escape(flag)}\b", done.stdout), (verb, flag)


def test_no_literal_secret_in_the_files() -> None:
    for path in K8S.rglob("*.yaml"):
        text = path.read_text()
        assert not URL_WITH_PASSWORD.search(text), path
        for doc in yaml.safe_load_all(text):
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                pytest.fail(f"{path}: a Secret with values; create it from files instead")


# -- the policy catches what it should -----------------------------------------------------------


def _worker(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return _by(objects, "Deployment", "workbench-worker")


def _main(obj: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return container


def _env(obj: dict[str, Any], name: str, value: str) -> None:
    _main(obj)["env"].append({"name": name, "value": value})


BREAKAGES: dict[str, Callable[[dict[str, Any]], object]] = {
    "no readiness probe": lambda o: _main(o).pop("readinessProbe"),
    "liveness on /readyz": lambda o: _main(o)["livenessProbe"]["httpGet"].update(path="/readyz"),
    "probe on an unknown port": lambda o: _main(o)["startupProbe"]["httpGet"].update(port="x"),
    "no memory limit": lambda o: _main(o)["resources"]["limits"].pop("memory"),
    "runs as root": lambda o: _main(o)["securityContext"].update(runAsUser=0),
    "writable root": lambda o: _main(o)["securityContext"].update(readOnlyRootFilesystem=False),
    "adds a capability": lambda o: _main(o)["securityContext"]["capabilities"].update(
        add=["NET_ADMIN"]
    ),
    "no seccomp": lambda o: _main(o)["securityContext"].pop("seccompProfile"),
    "escalation": lambda o: _main(o)["securityContext"].update(allowPrivilegeEscalation=True),
    "literal secret key": lambda o: _env(o, "WORKBENCH_SECRET_KEY", "x" * 40),
    "password in a URL": lambda o: _env(o, "BROKER", "redis://user:hunter2@redis:6379/0"),
    "password variable": lambda o: _env(o, "POSTGRES_PASSWORD", "postgres"),
    "unknown setting": lambda o: _env(o, "WORKBENCH_NOT_A_SETTING", "1"),
    "file outside the secrets": lambda o: _env(
        o, "WORKBENCH_WEBHOOK_URL_FILE", "/var/lib/workbench/hook"
    ),
    "envFrom": lambda o: _main(o).update(envFrom=[{"configMapRef": {"name": "x"}}]),
    "tmp not an emptyDir": lambda o: _main(o)["volumeMounts"].pop(1),
    "no init container": lambda o: o["spec"]["template"]["spec"].pop("initContainers"),
    "a command": lambda o: _main(o).update(command=["sh", "-c", "workbench worker"]),
    "an unlisted secret key": lambda o: o["spec"]["template"]["spec"]["volumes"][0]["projected"][
        "sources"
    ][0]["secret"]["items"].append({"key": "admin_password", "path": "admin_password"}),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_policy_flags_a_broken_worker(breakage: str) -> None:
    objects = copy.deepcopy(render(BASE))
    assert policy_problems([_worker(objects)]) == []
    BREAKAGES[breakage](_worker(objects))
    assert policy_problems([_worker(objects)]), breakage


def test_a_made_up_verb_or_flag_fails_the_cli_check() -> None:
    env = {**os.environ, "COLUMNS": "200"}
    bad = subprocess.run(
        [sys.executable, "-m", "workbench", "db", "migrate-now", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert bad.returncode != 0
    good = subprocess.run(
        [sys.executable, "-m", "workbench", "worker", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert good.returncode == 0 and "--metrics-port" in good.stdout
    assert not re.search(r"--health-port\b", good.stdout)
