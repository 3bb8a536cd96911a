"""The Python examples of README.md and docs/*.md run as written, so they cannot drift.

Every ```python block runs, in order (README.md first, then docs/ by name, each file in a
namespace of its own), against the embedded database of a fresh home after ``workbench init``,
from the repository's root as a reader would. A block that cannot run here says why in an
HTML comment on the line before it: ``<!-- not run: REASON -->``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import workbench
from workbench.api import init

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>\S*)[ \t]*$")
NOT_RUN = re.compile(r"^\s*<!-- not run: (?P<reason>.*\S) -->\s*$")


@dataclass(frozen=True)
class Block:
    file: Path
    line: int
    """The line of the block's first line of code (1-based)."""
    source: str
    not_run: str | None
    """Why the block cannot run here, from the comment before it; ``None`` if it runs."""

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


def python_blocks(file: Path) -> list[Block]:
    """The ```python blocks of ``file`` (indented ones too), with their not-run reasons."""
    lines = file.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, end = opening["indent"], i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if opening["lang"] == "python":
            before = next((ln for ln in reversed(lines[:i]) if ln.strip()), "")
            marked = NOT_RUN.match(before)
            code = "\n".join(ln.removeprefix(indent) for ln in lines[i + 1 : end])
            blocks.append(Block(file, i + 2, code + "\n", marked["reason"] if marked else None))
        i = end + 1
    return blocks


def test_every_not_run_comment_stands_before_a_python_block_and_says_why() -> None:
    for file in FILES:
        lines = file.read_text().splitlines()
        for number, line in enumerate(lines):
            if "<!-- not run" not in line:
                continue
            assert NOT_RUN.match(line), f"{file.name}:{number + 1}: write <!-- not run: REASON -->"
            following = next((ln for ln in lines[number + 1 :] if ln.strip()), "")
            assert following.strip() == "```python", f"{file.name}:{number + 1}: no block after"


def test_every_python_example_runs_in_order(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the examples name notebooks/... as a reader in the clone does
    init()  # the README's `workbench init`, before any example
    workbench.close()
    ran: dict[str, dict[str, Any]] = {}
    try:
        for file in FILES:
            namespace: dict[str, Any] = {"__name__": f"docs_example_{file.stem}"}
            for block in python_blocks(file):
                if block.not_run is not None:
                    continue
                code = compile(block.source, block.where, "exec")
                try:
                    exec(code, namespace)  # noqa: S102 (the project's own documentation)
                except Exception as error:
                    pytest.fail(f"{block.where}: {type(error).__name__}: {error}")
                ran[block.where] = namespace
    finally:
        workbench.close()

    assert any(w.startswith("README.md") for w in ran) and any(w.startswith("docs/") for w in ran)
    # What the examples promise, read back from what they made.
    readme = next(ns for w, ns in ran.items() if w.startswith("README.md"))
    assert readme["run"].status == "succeeded" and readme["run"].error_message is None
    assert readme["run"].output_uri
    runs_doc = next(ns for w, ns in ran.items() if w.startswith("docs/runs.md"))
    assert runs_doc["run"].status == "succeeded"
    frame = workbench.read_table("sales")
    assert sorted(frame["order_id"]) == [1, 2, 3, 4, 5] and "channel" in frame.columns
    assert workbench.jobs.get("daily-kpis").schedule == "0 6 * * *"
    workbench.close()
