"""An installed wheel (not the source tree) carries its migrations and can migrate."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_installed_wheel_migrates(tmp_path: Path) -> None:
    # Build from a clean copy: a build/ folder left by an earlier build would be reused.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".venv", "build", ".git", "*.egg-info", "tests")
    )
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(wheels),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("workbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "workbench/py.typed" in names
    assert "workbench/db/migrations/env.py" in names
    assert "workbench/db/migrations/script.py.mako" in names
    assert "workbench/ops/backup/notebooks/backup.ipynb" in names  # the built-in backup job
    assert "workbench/dashboards/templates/index.html.j2" in names  # the dashboards' page
    assert any(n.startswith("workbench/db/migrations/versions/0001") for n in names)
    assert "workbench/lab/openapi.yaml" in names  # the lab API's document
    # Installing the wheel enables the server extension in the environment's Jupyter servers.
    config = "etc/jupyter/jupyter_server_config.d/workbench.json"
    assert any(n.endswith(f".data/data/{config}") for n in names)

    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    env = dict(os.environ, PYTHONPATH=str(target), WORKBENCH_HOME=str(tmp_path / "home"))
    script = (
        "import workbench, workbench.cli.app;"
        f"assert workbench.__file__.startswith({str(target)!r}), workbench.__file__;"
        "workbench.cli.app.main(['init'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "schema:      at" in done.stdout
