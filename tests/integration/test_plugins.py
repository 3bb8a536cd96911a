"""The plugin system with real plugins: built-ins, an installed example, and broken ones."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.cli import run_cli
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.plugins.hookspecs import hookimpl
from workbench.plugins.manager import Plugins

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "workbench-example-plugin"


def _module(name: str, **functions: object) -> types.ModuleType:
    module = types.ModuleType(name)
    for attr, value in functions.items():
        setattr(module, attr, value)
    return module


def test_builtins_are_plugins_too() -> None:
    plugins = Plugins(load_settings())
    builtins = [p for p in plugins.plugin_list() if p.builtin]
    assert builtins
    assert all(p.status == "ok" for p in builtins)
    assert "register_notebook_dirs" in builtins[0].hooks


def test_builtin_folders(tmp_path: Path, isolated_env: Path) -> None:
    (tmp_path / "notebooks").mkdir()
    (isolated_env / "dashboards").mkdir(parents=True)
    plugins = Plugins(load_settings())
    assert plugins.collect("register_notebook_dirs", settings=load_settings()) == [
        tmp_path / "notebooks"
    ]
    assert plugins.collect("register_dashboard_dirs", settings=load_settings()) == [
        isolated_env / "dashboards"
    ]


def test_misspelled_hook_disables_only_that_plugin() -> None:
    @hookimpl
    def register_sorces() -> list[str]:
        return ["never"]

    plugins = Plugins(load_settings())
    plugins._register(
        _module("typo", register_sorces=register_sorces), "typo", "1.0", builtin=False
    )
    info = plugins.infos["typo"]
    assert info.status == "failed"
    assert "register_sorces" in (info.error or "")
    assert plugins.collect("register_notebook_dirs", settings=load_settings()) is not None


def test_a_raising_hook_is_recorded_and_the_others_still_answer() -> None:
    @hookimpl
    def register_sources() -> list[str]:
        raise RuntimeError("upstream API changed")

    @hookimpl
    def register_sources_ok() -> list[str]:
        return ["good-source"]

    plugins = Plugins(load_settings())
    plugins._register(_module("bad", register_sources=register_sources), "bad", "1", builtin=False)
    good = _module("good")
    good.register_sources = hookimpl(specname="register_sources")(lambda: ["good-source"])  # type: ignore[attr-defined]
    plugins._register(good, "good", "1", builtin=False)
    # The built-in sources answer too; of the two test plugins only the good one does.
    assert [s for s in plugins.collect("register_sources") if isinstance(s, str)] == ["good-source"]
    assert plugins.infos["bad"].status == "failed"
    assert "upstream API changed" in (plugins.infos["bad"].error or "")
    assert plugins.hook_failures[0].plugin == "bad"


def test_prepare_connection_reaches_every_new_connection(tmp_path: Path, db_url: str) -> None:
    seen: list[str] = []

    @hookimpl
    def prepare_connection(dialect: str) -> None:
        seen.append(dialect)

    plugins = Plugins(load_settings())
    plugins._register(_module("p", prepare_connection=prepare_connection), "p", "1", builtin=False)
    wb = Workbench(load_settings(), db_url, plugins=plugins)
    try:
        with wb.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        wb.close()
    assert seen == [wb.engine.dialect.name]


def _install_broken_plugins(target: Path) -> None:
    """Two installed distributions whose plugins are broken in different ways."""
    (target / "wb_broken_import.py").write_text(
        "raise ImportError('this plugin needs the missing-lib package')\n"
    )
    (target / "wb_broken_hook.py").write_text(
        "from workbench.plugins.hookspecs import hookimpl\n\n"
        "@hookimpl\n"
        "def register_commands(app):\n"
        "    raise RuntimeError('command table corrupted')\n"
    )
    for dist, entry in [
        ("wb_broken_import", "broken-import = wb_broken_import"),
        ("wb_broken_hook", "broken-hook = wb_broken_hook"),
    ]:
        info = target / f"{dist}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: 0.0.1\n"
        )
        (info / "entry_points.txt").write_text(f"[workbench]\n{entry}\n")


@pytest.fixture(scope="module")
def installed_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        timeout=300,
    )
    _install_broken_plugins(target)
    return target


def test_installed_example_and_broken_plugins(
    installed_plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WORKBENCH_PLUGINS")
    env = {"PYTHONPATH": str(installed_plugins)}
    listing = run_cli("plugins", "list", env=env)
    assert listing.code == 0, listing.output
    rows = {
        line.split("│")[1].strip(): line
        for line in listing.stdout.splitlines()
        if line.count("│") >= 5
    }
    assert "ok" in rows["example"]
    assert "0.1.0" in rows["example"]
    assert "register_commands" in rows["example"]
    assert "failed" in rows["broken-import"]
    assert "missing-lib" in rows["broken-import"]
    assert "failed" in rows["broken-hook"]
    assert "command table corrupted" in rows["broken-hook"]

    distance = run_cli(
        "example-distance", "--", "40.6398", "-73.7789", "33.9425", "-118.4081", env=env
    )
    assert distance.code == 0, distance.output
    assert distance.stdout.strip().startswith("39")

    init = run_cli("init", env=env)
    assert init.code == 0, init.output


def test_allow_list_keeps_other_plugins_out(
    installed_plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_PLUGINS", "example")
    listing = run_cli("plugins", "list", env={"PYTHONPATH": str(installed_plugins)})
    rows = {
        line.split("│")[1].strip(): line
        for line in listing.stdout.splitlines()
        if line.count("│") >= 5
    }
    assert "ok" in rows["example"]
    assert "not allowed" in rows["broken-import"]
    assert "missing-lib" not in listing.stdout


def test_no_installed_plugins_in_the_test_run(installed_plugins: Path) -> None:
    listing = run_cli("plugins", "list", env={"PYTHONPATH": str(installed_plugins)})
    assert "example" in listing.stdout
    assert "not allowed" in listing.stdout
    assert "register_commands" not in listing.stdout
