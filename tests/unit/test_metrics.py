"""The metrics' naming rules, and the shipped alert rules and dashboard against them.

The alert rules and the Grafana queries are checked with Prometheus' own `promtool` (Debian's
``prometheus`` package): skipped when it is missing, a failure with CI=true.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests import services
from workbench.ops import metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "workbench.json"
NAME = re.compile(r"^workbench_[a-z][a-z0-9_]*[a-z0-9]$")
TIME_WORDS = ("duration", "seconds", "age", "lag", "wait", "timestamp", "time")
METRIC_IN_QUERY = re.compile(r"\bworkbench_[a-z0-9_]+")


def _queryable_names() -> set[str]:
    """Every series name a query may use: counters' ``_total``, histograms' three series."""
    names: set[str] = set()
    for d in metrics.DEFINITIONS.values():
        if d.kind == "histogram":
            names |= {f"{d.name}_bucket", f"{d.name}_sum", f"{d.name}_count"}
        else:
            names.add(d.name)
    return names


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is missing (apt-get install prometheus)"
        if services.in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def test_every_metric_follows_the_naming_rules() -> None:
    assert metrics.DEFINITIONS
    for d in metrics.DEFINITIONS.values():
        assert NAME.match(d.name), f"{d.name}: lower case, workbench_ prefix"
        assert d.help.strip(), f"{d.name} needs a help text"
        assert set(d.labels) <= metrics.ALLOWED_LABELS, f"{d.name}: labels {d.labels}"
        if d.kind == "counter":
            assert d.name.endswith("_total"), f"counter {d.name} must end in _total"
        else:
            assert not d.name.endswith("_total"), f"only counters end in _total: {d.name}"
        if d.kind == "histogram" or any(w in d.name for w in TIME_WORDS):
            assert d.name.endswith("_seconds"), f"{d.name} measures time: end it in _seconds"
        if d.name.endswith("_info"):
            assert d.kind == "scraped" and d.labels
    # No label names a user, a notebook or a run.
    for forbidden in ("user", "username", "notebook", "path", "run_id", "job", "team"):
        assert forbidden not in metrics.ALLOWED_LABELS


def test_the_exposition_holds_exactly_the_defined_metrics() -> None:
    metrics.run_finished("succeeded", "schedule", 1.5)
    metrics.run_finished("failed", "someone's own trigger")
    metrics.dashboard_request("IndexHandler", 200, 0.01)
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {
        f.name: f
        for f in text_string_to_metric_families(body.decode())
        if f.name.startswith("workbench_")
    }
    defined = {d.name.removesuffix("_total"): d for d in metrics.DEFINITIONS.values()}
    # Without a watched database the gauges read from it are not exposed; everything else is.
    queue = {
        "workbench_backup_last_success_timestamp_seconds",
        "workbench_backup_last_verified_timestamp_seconds",
        "workbench_runs_queued",
        "workbench_runs_running",
        "workbench_database_up",
        "workbench_oldest_queued_run_age_seconds",
        "workbench_schedule_lag_seconds",
    }
    assert set(families) == set(defined) - queue
    for name, family in families.items():
        expected = "gauge" if defined[name].kind == "scraped" else defined[name].kind
        assert family.type == expected, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} <= set(defined[name].labels), sample
    triggers = {s.labels["trigger"] for s in families["workbench_runs"].samples}
    assert triggers <= metrics.TRIGGERS | {"other"}
    assert "other" in triggers
    (info,) = families["workbench_build_info"].samples
    assert info.value == 1 and info.labels["version"]


def test_importing_the_metrics_leaves_the_client_unimported() -> None:
    """A service chooses its multiprocess folder after the plugins imported this module."""
    code = (
        "import sys, workbench.ops.metrics, workbench.runs.records, workbench.notify; "
        "print('prometheus_client' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_no_other_module_defines_a_metric() -> None:
    for path in (ROOT / "workbench").rglob("*.py"):
        if path == ROOT / "workbench" / "ops" / "metrics.py":
            continue
        assert "prometheus_client" not in path.read_text(), f"{path}: use workbench.ops.metrics"


def _alert_rules() -> list[dict[str, object]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alerts_and_dashboard_use_only_metrics_that_exist() -> None:
    known = _queryable_names()
    rules = _alert_rules()
    assert {r["alert"] for r in rules} >= {
        "WorkbenchSchedulerDown", "WorkbenchQueueBacklog", "WorkbenchRunFailureRate",
        "WorkbenchLeaseExpiries", "WorkbenchBackupStale", "WorkbenchBackupUnverified",
    }  # fmt: skip
    for rule in rules:
        for name in METRIC_IN_QUERY.findall(str(rule["expr"])):
            assert name in known, f"alert {rule['alert']} uses {name}, which does not exist"
    queries = _dashboard_queries()
    assert len(queries) >= 15
    used: set[str] = set()
    for title, expr in queries:
        for name in METRIC_IN_QUERY.findall(expr):
            assert name in known, f"panel {title!r} uses {name}, which does not exist"
            used.add(name)
    assert len(used) >= 15


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def test_promtool_checks_and_tests_the_alert_rules() -> None:
    promtool = _promtool()
    for command in (
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
        ["check", "config", "prometheus.yml"],
    ):
        done = subprocess.run(
            [promtool, *command], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = _promtool()
    # Each query as a recording rule: `promtool check rules` parses every expression.
    rules = [
        {"record": f"workbench:panel_{i}", "expr": expr}
        for i, (_, expr) in enumerate(_dashboard_queries())
    ]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
