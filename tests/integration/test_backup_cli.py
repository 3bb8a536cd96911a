"""`workbench backup` as an admin runs it (real subprocesses), and the scheduled backup job.

Every verb on the embedded database; on PostgreSQL the round trip with `doctor`, and proof
that neither the manifest, nor the logs, nor any output holds a password, the database URL's
password or the secret key. Failures print one message, never a traceback.
"""

from __future__ import annotations

import fnmatch
import json
import re
import secrets
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import Result, run_cli
from tests.integration.backup_world import Cluster, owner_cluster, scratch_databases
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.db.models import RunStatus
from workbench.ops.backup.api import BACKUP_NOTEBOOK, list_backups
from workbench.ops.backup.bundle import KEY_FILE, MANIFEST, VERIFIED
from workbench.runs.api import notebook_params
from workbench.runs.execute import execute_run
from workbench.runs.results import results as run_results
from workbench.scheduler import api as jobs


def _ok(result: Result) -> str:
    assert result.code == 0, result.output
    assert "Traceback" not in result.output, result.output
    return result.stdout


def _refused(result: Result, message: str, code: int = 1) -> None:
    assert result.code == code, result.output
    assert message in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output, result.output


def _written(output: str) -> Path:
    match = re.search(r"backup written: (\S+)", output)
    assert match, output
    return Path(match.group(1))


def test_every_verb_on_the_embedded_database(isolated_env: Path, tmp_path: Path) -> None:
    _ok(run_cli("init"))
    first = _written(_ok(run_cli("backup", "create", "--include-key")))
    assert (first / KEY_FILE).stat().st_mode & 0o777 == 0o600
    listing = _ok(run_cli("backup", "list"))
    assert first.name in listing and "sqlite" in listing
    verified = _ok(run_cli("backup", "verify", first.name))
    assert "scratch restore: at migration" in verified and f"{first} verified" in verified
    [entry] = json.loads(_ok(run_cli("backup", "list", "--json")))
    assert entry["name"] == first.name and entry["verified"] is True and entry["key_included"]

    _refused(run_cli("backup", "restore", first.name), "Say where to restore", code=2)
    _refused(
        run_cli("backup", "restore", first.name, "--home", str(isolated_env)),
        "The restore target is not empty",
    )
    forced = _ok(run_cli("backup", "restore", first.name, "--home", str(isolated_env), "--force"))
    assert "migrations" in forced and "failed" not in forced
    elsewhere = tmp_path / "elsewhere"
    restored = _ok(run_cli("backup", "restore", str(first), "--home", str(elsewhere)))
    assert "at head" in restored
    assert (elsewhere / KEY_FILE).read_text() == (isolated_env / KEY_FILE).read_text()

    copy = _written(_ok(run_cli("backup", "create", "--to", str(tmp_path / "elsewhere-backups"))))
    dump = copy / "database.sqlite"
    dump.write_bytes(dump.read_bytes()[:-100])
    _refused(run_cli("backup", "verify", str(copy)), "failed verification")
    _refused(run_cli("backup", "verify", "workbench-19990101T000000Z"), "There is no backup at")

    second = _written(_ok(run_cli("backup", "create")))
    third = _written(_ok(run_cli("backup", "create")))
    pruned = _ok(
        run_cli("backup", "prune", "--keep-daily", "1", "--keep-weekly", "0", "--keep-monthly", "0")
    )
    assert f"deleted {second.name}" in pruned, pruned
    assert re.search(rf"keep\s+{first.name} \(newest verified\)", pruned), pruned
    assert re.search(rf"keep\s+{third.name} \(daily", pruned), pruned
    assert not second.exists() and first.exists() and third.exists()
    _refused(
        run_cli(
            "backup", "prune", "--keep-daily", "0", "--keep-weekly", "0", "--keep-monthly", "0"
        ),
        "give --keep-daily",
    )


def test_the_scheduled_backup_job_creates_verifies_and_prunes(isolated_env: Path) -> None:
    _ok(run_cli("init"))
    saved = _ok(run_cli("backup", "schedule", "0 2 * * *", "--keep-daily", "2"))
    assert "job workbench-backup saved" in saved
    with Workbench(load_settings()) as bench:
        job = jobs.get("workbench-backup", workbench=bench)
        assert job.notebook == str(BACKUP_NOTEBOOK) and job.schedule == "0 2 * * *"
        assert job.parameters["keep_daily"] == 2 and job.retries == 2
        run = execute_run(jobs.trigger("workbench-backup", workbench=bench), workbench=bench)
        assert run.status == RunStatus.SUCCEEDED, run.error_message
        [backup] = list_backups(bench.settings)
        assert backup.verified is True
        recorded = run_results(run.id, workbench=bench)
        assert recorded["backup"] == backup.name and recorded["pruned"] == 0


def test_the_backup_notebook_ships_with_the_package() -> None:
    root = Path(__file__).resolve().parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = data["tool"]["setuptools"]["package-data"]["workbench"]
    relative = BACKUP_NOTEBOOK.relative_to(root / "workbench").as_posix()
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), patterns
    names = {p.name for p in notebook_params(BACKUP_NOTEBOOK).parameters}
    assert names == {"location", "include_key", "keep_daily", "keep_weekly", "keep_monthly"}


@pytest.fixture
def cluster(postgres_available: None) -> Iterator[Cluster]:
    with owner_cluster() as made:
        yield made


def test_postgresql_round_trip_keeps_secrets_out_of_everything(
    cluster: Cluster, isolated_env: Path, tmp_path: Path
) -> None:
    source_url = cluster.new_database()
    key = secrets.token_urlsafe(48)
    env = {
        "WORKBENCH_DATABASE_URL": source_url,
        "WORKBENCH_SECRET_KEY": key,
        "WORKBENCH_LOG_LEVEL": "DEBUG",
        "WORKBENCH_LOG_FORMAT": "json",
        "WORKBENCH_ENV": "production",
    }
    outputs = [_ok(run_cli("init", env=env))]
    added = run_cli("users", "add", "ann", env=env)
    outputs.append(_ok(added))

    before = run_cli("doctor", "--json", env=env)
    assert before.code == 2, before.output  # warnings only: no verified backup yet
    [check] = [c for c in json.loads(before.stdout)["checks"] if c["name"] == "backups"]
    assert check["status"] == "warning" and "no verified backup yet" in check["detail"]

    created = run_cli("backup", "create", "--include-key", env=env)
    bundle = _written(_ok(created))
    verified = run_cli("backup", "verify", str(bundle), env=env)
    assert "db-credentials value decrypts" in _ok(verified)
    assert not scratch_databases()
    after = run_cli("doctor", "--json", env=env)
    assert after.code == 0, after.output

    target_url = cluster.new_database()
    restored = run_cli(
        "backup",
        "restore",
        str(bundle),
        "--into",
        target_url,
        "--home",
        str(tmp_path / "h2"),
        env=env,
    )
    shown = _ok(restored)
    assert "reset the database login of 2 user(s)" in " ".join(shown.split())
    refused = run_cli("backup", "restore", str(bundle), "--into", target_url, env=env)
    _refused(refused, "holds")

    secrets_ = {"the database password": cluster.password, "the secret key": key}
    everything = [*outputs, before, created, verified, after, restored, refused]
    texts = [r if isinstance(r, str) else r.output for r in everything]
    files = {p.name: p.read_bytes() for p in bundle.iterdir() if p.name != KEY_FILE}
    assert {MANIFEST, VERIFIED, "database.dump"} <= set(files)
    for what, value in secrets_.items():
        for text in texts:
            assert value not in text, f"{what} was printed or logged"
        for name, data in files.items():
            assert value.encode() not in data, f"{what} is in {name}"
    manifest = json.loads(files[MANIFEST])
    assert manifest["source"]["database"].count("***") == 1
    assert manifest["key_included"] is True
