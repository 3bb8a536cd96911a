"""What the command line imports before it has anything to do with a database.

`workbench --help`, a usage error and the plugin commands' registration run on every
invocation, so they must not pay for SQLAlchemy and the database models (about half a second
on a small machine): those load inside the commands that use them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
sys.argv = ["workbench", *json.loads(sys.argv[1])]
from workbench.cli.app import main
try:
    main()
except SystemExit:
    pass
heavy = sorted(m for m in sys.modules if m.split(".")[0] == "sqlalchemy" or m in (
    "workbench.db.models", "workbench.ops.metrics", "pandas", "nbformat", "jupyter_client"))
print(json.dumps(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["runs", "--help"], ["users", "add", "--help"], ["run"], ["no-such-verb"]],
    ids=["help", "group-help", "users-add-help", "missing-argument", "unknown-verb"],
)
def test_no_database_layer_is_imported_before_a_command_needs_it(
    args: list[str], tmp_path: Path
) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WORKBENCH_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    heavy = json.loads(done.stderr.strip().splitlines()[-1])
    assert heavy == [], f"`workbench {' '.join(args)}` imported {heavy}"


ALEMBIC_PROBE = """
import json, sys
sys.argv = ["workbench", *json.loads(sys.argv[1])]
from workbench.cli.app import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "alembic")
print(json.dumps([code, loaded, "psycopg" in sys.modules]), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["runs", "list"], ["jobs", "list"], ["db", "current"]])
def test_commands_that_change_no_schema_do_not_import_alembic(
    args: list[str], tmp_path: Path
) -> None:
    """Alembic adds about 0.1 s to a command's start: only migrations and schema checks pay.
    On the embedded database none loads PostgreSQL's driver either (about 0.05 s)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WORKBENCH_HOME": str(tmp_path)}
    init = subprocess.run(
        [sys.executable, "-m", "workbench", "init"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert init.returncode == 0, init.stdout + init.stderr
    done = subprocess.run(
        [sys.executable, "-c", ALEMBIC_PROBE, json.dumps(args)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    code, loaded, psycopg = json.loads(done.stderr.strip().splitlines()[-1])
    assert code in (0, None), done.stdout + done.stderr
    assert not psycopg, f"`workbench {' '.join(args)}` imported psycopg on SQLite"
    if args == ["db", "current"]:  # it reads the revision through Alembic: the check can fail
        assert loaded
    else:
        assert loaded == [], f"`workbench {' '.join(args)}` imported {loaded}"


NOTEBOOK_PROBE = """
import json, sys
sys.argv = ["workbench", *json.loads(sys.argv[1])]
from workbench.cli.app import main
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps([code, "nbformat" in sys.modules, sys.modules.get("rfc3987_syntax", 0) is None]),
      file=sys.stderr)
"""


def test_a_notebook_command_skips_jsonschemas_iri_checker(tmp_path: Path) -> None:
    """rfc3987-syntax compiles its grammars on import (about 0.5 s idle, 1.5 s under load):
    reading a notebook (nbformat, and so jsonschema) must not pay for it."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WORKBENCH_HOME": str(tmp_path)}
    notebook = Path(__file__).parents[1] / "notebooks" / "typed_params.ipynb"
    done = subprocess.run(
        [sys.executable, "-c", NOTEBOOK_PROBE, json.dumps(["notebooks", "params", str(notebook)])],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    code, read_a_notebook, skipped = json.loads(done.stderr.strip().splitlines()[-1])
    assert code in (0, None) and read_a_notebook, done.stdout + done.stderr
    assert skipped, "rfc3987_syntax was imported"
