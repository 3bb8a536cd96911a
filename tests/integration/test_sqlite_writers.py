"""Acts that read before they write wait for another SQLite writer instead of failing.

Under WAL a transaction that began deferred and read first cannot take the write lock once
another writer has committed in the meantime: it failed at once with "database is locked",
whatever the busy timeout. The JupyterLab extension's "Save job" answered 500 that way while
the scheduler ticked. Each act below starts while another connection holds the write lock
for half a second, and must wait and succeed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.sqlite_helpers import another_writer
from workbench.accounts import api as accounts
from workbench.app import Workbench
from workbench.core.config import Settings
from workbench.core.home import ensure_home, ensure_secret_key
from workbench.runs.api import queue_run
from workbench.runs.secrets import read_secret, set_secret
from workbench.scheduler import api as jobs

TRIVIAL = str(Path(__file__).parents[1] / "notebooks" / "trivial.ipynb")


ACTS: dict[str, Callable[[Workbench, int], object]] = {
    "register a job": lambda wb, i: jobs.register(f"job{i}", TRIVIAL, workbench=wb),
    "trigger a job": lambda wb, i: jobs.trigger("job0", workbench=wb),
    "pause a job": lambda wb, i: jobs.pause("job0", workbench=wb),
    "queue a run": lambda wb, i: queue_run(TRIVIAL, {"x": i}, workbench=wb),
    "add a user": lambda wb, i: accounts.add_user(f"user{i}", role="viewer", workbench=wb),
    "set a secret": lambda wb, i: set_secret(wb, f"secret{i}", "value"),
}
#: What each act left behind, read back after both tries.
DONE: dict[str, Callable[[Workbench], bool]] = {
    "register a job": lambda wb: {"job1", "job2"} <= {j.name for j in jobs.list_jobs(workbench=wb)},
    "trigger a job": lambda wb: _count(wb, "runs") == 2,
    "pause a job": lambda wb: jobs.get("job0", workbench=wb).paused,
    "queue a run": lambda wb: _count(wb, "runs") == 2,
    "add a user": lambda wb: (
        {"user1", "user2"} <= {u.username for u in accounts.list_users(workbench=wb)}
    ),
    "set a secret": lambda wb: read_secret(wb, "secret2") == "value",
}


def _count(wb: Workbench, table: str) -> int:
    with wb.engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())


@pytest.mark.parametrize("act", list(ACTS))
def test_an_act_waits_for_another_writer_instead_of_failing(
    act: str, settings: Settings, sqlite_url: str
) -> None:
    ensure_home(settings)
    ensure_secret_key(settings)
    with Workbench(settings, sqlite_url) as wb:
        jobs.register("job0", TRIVIAL, workbench=wb)
        for i in (1, 2):
            with another_writer(sqlite_url):
                ACTS[act](wb, i)  # "database is locked" at once before
        assert DONE[act](wb)
