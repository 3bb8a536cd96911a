"""The package's shape: no import circle, a short top level, one home for errors, contracts.

The layer contracts themselves live in pyproject.toml (``[tool.importlinter]``) and run as
``lint-imports`` in .ci/run; these tests keep what the contracts cannot say.
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import workbench
from workbench.core.errors import WorkbenchError

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "workbench"
#: The only modules at the top of the package: the facade, the handle, the magics, the entry.
TOP_LEVEL = {"__init__", "__main__", "api", "app", "magics"}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_no_import_circle_among_modules() -> None:
    # grimp reads every import statement: inside functions and under TYPE_CHECKING too.
    graph = grimp.build_graph("workbench", cache_dir=None)
    assert _cycles(graph) == []


def test_the_top_level_holds_only_the_facade_the_handle_and_the_magics() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules <= TOP_LEVEL, f"loose modules: {sorted(modules - TOP_LEVEL)}"


def test_every_public_name_resolves_lazily() -> None:
    for name in workbench.__all__:
        assert getattr(workbench, name) is not None, name
    assert set(workbench.__all__) <= set(dir(workbench))
    with pytest.raises(AttributeError):
        workbench.UserInfo  # noqa: B018 - in accounts.api's __all__, not the facade's


def _all_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(workbench.__path__, "workbench."):
        if (
            not info.name.startswith("workbench.db.migrations")
            and info.name != "workbench.__main__"
        ):
            names.append(info.name)
    return names


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def test_every_error_is_declared_in_its_packages_errors_module() -> None:
    for name in _all_modules():
        importlib.import_module(name)
    errors = [WorkbenchError, *_subclasses(WorkbenchError)]
    ours = [cls for cls in errors if cls.__module__.startswith("workbench.")]
    assert len(ours) > 30  # every package's errors, not only those imported so far
    misplaced = [
        f"{c.__module__}.{c.__qualname__}" for c in ours if c.__module__.split(".")[-1] != "errors"
    ]
    assert misplaced == []
    undocumented = [c.__qualname__ for c in ours if not (c.__doc__ or "").strip()]
    assert undocumented == []


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("layers")
    shutil.copytree(PACKAGE, copy / "workbench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def _lint(copy: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(copy / "pyproject.toml")],
        cwd=copy,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_layer_contracts_hold_and_catch_an_upward_import(package_copy: Path) -> None:
    kept = _lint(package_copy)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "0 broken" in kept.stdout
    # A function-level import from the database layer up to the data API breaks the layers.
    engine = package_copy / "workbench" / "db" / "engine.py"
    engine.write_text(
        engine.read_text() + "\n\ndef _upward() -> None:\n    from workbench.data import api\n"
    )
    broken = _lint(package_copy)
    assert broken.returncode != 0
    assert "workbench.db is not allowed to import workbench.data" in broken.stdout
    assert "workbench.db.engine -> workbench.data.api" in broken.stdout
