"""The plugin system with real plugins: built-ins, an installed example, and broken ones."""

from __future__ import annotations

import logging
import subprocess
import sys
import types
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.cli import run_cli
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.plugins.hookspecs import hookimpl
from workbench.plugins.manager import Plugins, get_plugins
from workbench.runs.errors import NotebookError
from workbench.runs.notebook import locate_notebook

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "workbench-example-plugin"


def _module(name: str, **functions: object) -> types.ModuleType:
    module = types.ModuleType(name)
    for attr, value in functions.items():
        setattr(module, attr, value)
    return module


def test_plugins_mark_hooks_with_the_facades_hookimpl() -> None:
    import workbench

    assert workbench.hookimpl is hookimpl
    assert "hookimpl" in workbench.__all__


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


def test_results_come_back_in_pluggys_order_the_last_registered_first() -> None:
    plugins = Plugins(load_settings())
    for name in ("first", "second"):
        plugin = _module(name)
        plugin.register_sources = hookimpl(specname="register_sources")(lambda n=name: [n])  # type: ignore[attr-defined]
        plugins._register(plugin, name, "1", builtin=False)
    results = plugins.call("register_sources")
    assert results[:2] == [["second"], ["first"]]
    assert [s.name for s in results[2]][:2] == ["files", "sql"]  # the built-in sources


@contextmanager
def _manager_log(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture the manager's log even where another test stopped ``workbench`` propagating."""
    logger = logging.getLogger("workbench.plugins.manager")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            yield
    finally:
        logger.removeHandler(caplog.handler)


def test_tracing_logs_each_hook_call_and_its_result(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    @hookimpl
    def register_sources() -> list[str]:
        return ["traced-source"]

    monkeypatch.setenv("WORKBENCH_TRACE_PLUGINS", "1")
    plugins = Plugins(load_settings())
    plugins._register(_module("t", register_sources=register_sources), "t", "1", builtin=False)
    with _manager_log(caplog):
        plugins.collect("register_sources")
    assert "register_sources [hook]" in caplog.text
    assert "finish register_sources -->" in caplog.text
    assert "traced-source" in caplog.text


def test_tracing_from_settings_shows_the_arguments(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "notebooks").mkdir()
    settings = load_settings(trace_plugins=True)
    with _manager_log(caplog):
        Plugins(settings).collect("register_notebook_dirs", settings=settings)
    assert "register_notebook_dirs [hook]" in caplog.text
    assert "settings: " in caplog.text
    assert f"finish register_notebook_dirs --> [[{(tmp_path / 'notebooks')!r}]]" in caplog.text
    caplog.clear()
    with _manager_log(caplog):
        Plugins(load_settings()).collect("register_notebook_dirs", settings=settings)
    assert "[hook]" not in caplog.text  # off by default


def test_tracing_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "notebooks").mkdir()
    listed = run_cli("notebooks", "list", env={"WORKBENCH_TRACE_PLUGINS": "1"})
    assert listed.code == 0, listed.output
    assert "workbench.plugins.manager" in listed.stderr
    assert "finish register_notebook_dirs -->" in listed.stderr
    assert "[hook]" not in run_cli("notebooks", "list").stderr


def test_a_plugins_hook_wrapper_sees_the_call_and_its_result(tmp_path: Path) -> None:
    (tmp_path / "notebooks").mkdir()
    extra = tmp_path / "team-notebooks"
    seen: list[tuple[Any, Any]] = []

    @hookimpl(wrapper=True)
    def register_notebook_dirs(settings: Any) -> Generator[None, Any, Any]:
        results = yield
        seen.append((settings, results))
        return [*results, [extra]]

    settings = load_settings()
    plugins = Plugins(settings)
    plugins._register(
        _module("w", register_notebook_dirs=register_notebook_dirs), "w", "1", builtin=False
    )
    assert plugins.collect("register_notebook_dirs", settings=settings) == [
        tmp_path / "notebooks",
        extra,
    ]
    assert seen == [(settings, [[tmp_path / "notebooks"]])]
    assert plugins.infos["w"].status == "ok"
    assert plugins.infos["w"].hooks == ["register_notebook_dirs"]


def test_a_raising_hook_wrapper_is_recorded_and_the_result_passes_through(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "notebooks").mkdir()

    @hookimpl(wrapper=True)
    def register_notebook_dirs() -> Generator[None, Any, Any]:
        yield
        raise KeyError("layout changed")

    @hookimpl(hookwrapper=True)
    def register_sources() -> Generator[None, Any, None]:
        raise RuntimeError("before the call")
        yield  # pragma: no cover - makes it a generator

    settings = load_settings()
    plugins = Plugins(settings)
    broken = _module(
        "broken", register_notebook_dirs=register_notebook_dirs, register_sources=register_sources
    )
    plugins._register(broken, "broken", "1", builtin=False)
    with _manager_log(caplog):
        folders = plugins.collect("register_notebook_dirs", settings=settings)
        sources = plugins.collect("register_sources")
    assert folders == [tmp_path / "notebooks"]
    assert "files" in [s.name for s in sources]
    assert [(f.plugin, f.hook) for f in plugins.hook_failures] == [
        ("broken", "register_notebook_dirs"),
        ("broken", "register_sources"),
    ]
    assert "layout changed" in plugins.hook_failures[0].error
    assert plugins.infos["broken"].status == "failed"
    assert "plugin broken failed in register_sources: RuntimeError: before the call" in caplog.text


def test_a_raising_implementation_spares_the_others_through_pluggy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @hookimpl
    def run_queued(event: Any) -> None:
        raise ValueError("no such queue")

    heard: list[Any] = []

    @hookimpl
    def run_queued_ok(event: Any) -> str:
        heard.append(event)
        return "heard"

    plugins = Plugins(load_settings())
    plugins._register(_module("bad", run_queued=run_queued), "bad", "1", builtin=False)
    good = _module("good")
    good.run_queued = hookimpl(specname="run_queued")(run_queued_ok)  # type: ignore[attr-defined]
    plugins._register(good, "good", "1", builtin=False)
    with _manager_log(caplog):
        assert plugins.call("run_queued", event="e") == ["heard"]
    assert heard == ["e"]
    assert plugins.hook_failures[0].hook == "run_queued"
    assert "ValueError: no such queue" in (plugins.infos["bad"].error or "")
    assert "plugin bad failed in run_queued" in caplog.text


def test_a_raising_built_in_propagates() -> None:
    @hookimpl
    def register_sources() -> list[str]:
        raise RuntimeError("a Workbench bug")

    plugins = Plugins(load_settings())
    plugins._register(
        _module("builtin", register_sources=register_sources), "builtin", "1", builtin=True
    )
    with pytest.raises(RuntimeError, match="a Workbench bug"):
        plugins.collect("register_sources")
    assert plugins.hook_failures == []


def test_a_plugins_notebook_folder_finds_notebooks_by_name(tmp_path: Path) -> None:
    team = tmp_path / "team-notebooks"
    team.mkdir()
    (team / "weekly.ipynb").write_text("{}")

    @hookimpl
    def register_notebook_dirs() -> list[Path]:
        return [team]

    plugins = get_plugins(load_settings())
    plugins._register(
        _module("team", register_notebook_dirs=register_notebook_dirs), "team", "1", builtin=False
    )
    assert locate_notebook("weekly") == str(team / "weekly.ipynb")
    assert locate_notebook("weekly.ipynb", load_settings()) == str(team / "weekly.ipynb")
    with pytest.raises(NotebookError, match=f"looked in {tmp_path}, {team}"):
        locate_notebook("monthly")
    with pytest.raises(NotebookError, match="does not exist"):
        locate_notebook(tmp_path / "weekly.ipynb")  # an absolute path is not looked up


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
