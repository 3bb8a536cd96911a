"""Every command meets a database it cannot use with one line of error and creates nothing.

A closed port, a database that does not exist, a database without the schema, a home before
`workbench init` and a read-only database: each command prints one `Error:` line saying what
and what to do, exits non-zero, shows no traceback and leaves no file behind. The matrix runs
the console entry point in this process (`main(argv)`, as the console script calls it); two
cases run it as a real subprocess too.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from tests.cli import run_cli
from workbench.api import init
from workbench.cli.app import main
from workbench.core.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
TRIVIAL = str(ROOT / "tests" / "notebooks" / "trivial.ipynb")
PASSWORD = "pw-never-shown"

#: Every command that opens the database, as a user would type it.
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("runs", "list"),
    ("runs", "show", str(uuid.UUID(int=1))),
    ("runs", "logs", str(uuid.UUID(int=1))),
    ("jobs", "list"),
    ("jobs", "show", "nightly"),
    ("jobs", "add", "nightly", TRIVIAL, "--schedule", "0 6 * * *"),
    ("users", "list"),
    ("users", "add", "someone", "--role", "viewer"),
    ("teams", "list"),
    ("secrets", "list"),
    ("secrets", "set", "token", "--value-file", "@value"),
    ("db", "current"),
    ("db", "upgrade"),
    ("db", "check"),
    ("db", "downgrade", "base"),
    ("run", TRIVIAL),
    ("ingest", "files", "--table", "t", "-o", "path=@csv"),
    ("backup", "create"),
)
WRITES = frozenset({"add", "set", "upgrade", "downgrade", "run", "ingest", "create"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")} if root.exists() else set()


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "value").write_text("not-a-real-secret\n")
    (folder / "data.csv").write_text("a,b\n1,2\n")
    return {"@value": str(folder / "value"), "@csv": str(folder / "data.csv")}


def _argv(command: tuple[str, ...], inputs: dict[str, str]) -> list[str]:
    argv = []
    for part in command:
        for marker, value in inputs.items():
            part = part.replace(marker, value)
        argv.append(part)
    return argv


def _one_error_line(command: list[str], capsys: pytest.CaptureFixture[str], *expected: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main(command)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert exited.value.code not in (0, None), (command, out, err)
    assert len(lines) == 1 and lines[0].startswith("Error: "), (command, err)
    assert "Traceback" not in out + err
    assert PASSWORD not in out + err
    for word in expected:
        assert word in lines[0], (command, lines[0])
    return lines[0]


def _unreachable(kind: str, request: pytest.FixtureRequest) -> tuple[str, tuple[str, ...]]:
    """A database URL that cannot be used, and what its error must name."""
    from tests import services

    if kind == "closed port":
        return f"postgresql://wb:{PASSWORD}@127.0.0.1:{_free_port()}/wb", ("127.0.0.1",)
    request.getfixturevalue("postgres_available")  # the server answers; the database is missing
    name = services.new_database_name("wb_missing")
    return services.sqlalchemy_url(name), (name, "does not exist")


@pytest.mark.parametrize("kind", ["closed port", "missing database"])
def test_a_database_that_cannot_be_reached(
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    inputs: dict[str, str],
    request: pytest.FixtureRequest,
) -> None:
    url, named = _unreachable(kind, request)
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", url)
    monkeypatch.setenv("WORKBENCH_SECRET_KEY", "k" * 48)
    for command in (*COMMANDS, ("init",)):
        _one_error_line(_argv(command, inputs), capsys, "onnect to", *named)


def test_a_home_before_init_gets_no_database_file(
    capsys: pytest.CaptureFixture[str], inputs: dict[str, str], tmp_path: Path
) -> None:
    before = _files(tmp_path)
    for command in (*COMMANDS, ("doctor",)):
        if command == ("doctor",):  # doctor reports the check in its table and fails
            with pytest.raises(SystemExit) as exited:
                main(list(command))
            out, err = capsys.readouterr()
            assert exited.value.code == 1 and "workbench init" in out and "Traceback" not in err
            continue
        _one_error_line(_argv(command, inputs), capsys, "no Workbench database", "workbench init")
    created = _files(tmp_path) - before
    assert not [p for p in created if "pytest" not in str(p)], created


def test_a_database_without_the_schema(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    inputs: dict[str, str],
    pg_empty_url: str,
) -> None:
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", pg_empty_url)
    monkeypatch.setenv("WORKBENCH_SECRET_KEY", "k" * 48)
    for command in COMMANDS:
        if command[:2] in (("db", "upgrade"), ("db", "current"), ("db", "downgrade")):
            continue  # the migration commands work on an empty database
        said = _one_error_line(_argv(command, inputs), capsys)
        if command[0] not in ("secrets", "db"):  # these say what they need in their terms
            assert "no Workbench schema" in said and "db upgrade" in said, (command, said)


def test_a_read_only_database_refuses_writes_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    inputs: dict[str, str],
) -> None:
    settings = load_settings()
    init(settings)
    database = Path(settings.effective_database_url().split("///", 1)[1])
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", f"sqlite:///file:{database}?mode=ro&uri=true")
    before = database.read_bytes()
    for command in COMMANDS:
        if command[-1] == "--schedule" or not WRITES & set(command[:2]):
            continue
        if command[:2] in (("db", "upgrade"), ("backup", "create")):
            continue  # nothing to write (at the newest revision) / a copy, not a write
        _one_error_line(_argv(command, inputs), capsys, "readonly")
    assert database.read_bytes() == before


def test_the_console_script_says_it_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    closed = run_cli(
        "runs",
        "list",
        env={"WORKBENCH_DATABASE_URL": f"postgresql://wb:{PASSWORD}@127.0.0.1:{_free_port()}/wb"},
    )
    before_init = run_cli("jobs", "list", env={"WORKBENCH_HOME": str(home)})
    for result in (closed, before_init):
        assert result.code == 1, result.output
        assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("Error: ")
        assert "Traceback" not in result.output and PASSWORD not in result.output
    assert "Cannot connect" in closed.stderr
    assert "workbench init" in before_init.stderr
    assert not home.exists()
