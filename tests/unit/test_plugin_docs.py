"""docs/plugins.md documents every hook with its exact signature, and nothing else."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from workbench.plugins import hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def _specs() -> dict[str, str]:
    return {
        name: f"def {name}{inspect.signature(fn)}".replace("'", "")
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, f"{hookspecs.PROJECT_NAME}_spec")
    }


def test_every_hook_is_documented_with_its_signature() -> None:
    docs = DOCS.read_text()
    for name, signature in _specs().items():
        assert f"### {name}\n" in docs, f"{name} has no section in docs/plugins.md"
        assert signature in docs, f"docs/plugins.md has a stale signature for {name}"


def test_docs_mention_no_hook_that_does_not_exist() -> None:
    documented = set(re.findall(r"^def (\w+)\(", DOCS.read_text(), re.M))
    assert documented == set(_specs())


def test_every_hook_has_a_docstring() -> None:
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(fn, f"{hookspecs.PROJECT_NAME}_spec"):
            assert fn.__doc__ and fn.__doc__.strip(), name
