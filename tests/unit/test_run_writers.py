"""One writer for the ``runs`` table: only the run records module builds writes of runs.

The sources are read with :mod:`ast`, so the rule follows the code (aliases included), not
spelling: ``insert(Run)``, ``update(Run)``, ``delete(Run)``, the dialects' inserts and
``Run(...)`` ORM constructions of the runs model may appear only in the writer.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "workbench"
MODELS = "workbench.db.models"
#: The module that changes a run's state; everything else calls it.
WRITERS = {"workbench/runs/records.py"}
WRITE_CALLS = {"insert", "update", "delete", "pg_insert", "sqlite_insert"}


def _run_model_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to the runs model (``Run`` or an alias) and to the models module."""
    runs: set[str] = set()
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == MODELS:
            runs |= {a.asname or a.name for a in node.names if a.name == "Run"}
        elif isinstance(node, ast.ImportFrom) and node.module == "workbench.db":
            modules |= {a.asname or a.name for a in node.names if a.name == "models"}
        elif isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.name == MODELS and a.asname}
    return runs, modules


def _is_run_model(node: ast.expr, runs: set[str], modules: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in runs
    if isinstance(node, ast.Attribute):
        if node.attr == "__table__":
            return _is_run_model(node.value, runs, modules)
        return node.attr == "Run" and (
            (isinstance(node.value, ast.Name) and node.value.id in modules)
            or ast.unparse(node.value) == MODELS
        )
    return False


def _callee(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def run_writes(source: str) -> list[str]:
    """Every construction of a write of the runs model in ``source``, as ``line: code``."""
    tree = ast.parse(source)
    runs, modules = _run_model_names(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        builds_row = _is_run_model(node.func, runs, modules)
        writes = _callee(node) in WRITE_CALLS and any(
            _is_run_model(arg, runs, modules) for arg in node.args
        )
        table_write = (
            isinstance(node.func, ast.Attribute)
            and node.func.attr in WRITE_CALLS
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "__table__"
            and _is_run_model(node.func.value, runs, modules)
        )
        if builds_row or writes or table_write:
            found.append((node.lineno, ast.unparse(node)[:80]))
    return [f"{line}: {code}" for line, code in sorted(found)]


def test_the_detector_sees_writes_under_any_alias() -> None:
    source = (
        "from sqlalchemy import insert, update\n"
        "from workbench.db import models\n"
        "from workbench.db.models import Job, Run as RunRow\n"
        "update(RunRow).values(status='queued')\n"
        "insert(models.Run).values()\n"
        "RunRow(id=1)\n"
        "RunRow.__table__.delete()\n"
        "update(Job).values(paused=True)\n"
        "select_runs = [RunRow.id]\n"
    )
    assert [hit.split(":")[0] for hit in run_writes(source)] == ["4", "5", "6", "7"]


def test_only_the_run_records_module_writes_runs() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative in WRITERS or "/migrations/" in relative:
            continue
        hits = run_writes(path.read_text(encoding="utf-8"))
        if hits:
            offenders[relative] = hits
    assert offenders == {}, "runs are written only through workbench.runs.records"


def test_the_writer_is_still_where_the_rule_says() -> None:
    for relative in WRITERS:
        assert run_writes((ROOT / relative).read_text(encoding="utf-8")), relative
