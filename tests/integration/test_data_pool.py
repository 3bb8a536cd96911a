"""The pooled ADBC connections behind wb.sql / wb.read_table / wb.write on PostgreSQL.

A connection is reused by the same login only, comes back without the previous call's session
state or transaction, and one the server dropped is replaced without an error.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import services
from tests.integration.test_rls_policies import World, world  # noqa: F401 (fixture)
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.data.errors import DataError

pytestmark = pytest.mark.postgres


@pytest.fixture
def as_user(world: World) -> Iterator[dict[str, Workbench]]:  # noqa: F811
    """A Workbench per user of the world, logging in with that user's own role."""
    benches = {}
    for name in ("alice", "bob"):
        url = world.psycopg_url(name).replace("postgresql://", "postgresql+psycopg://", 1)
        benches[name] = Workbench(load_settings(), url)
    yield benches
    for bench in benches.values():
        bench.close()


def _pid(bench: Workbench) -> int:
    return int(bench.sql("SELECT pg_backend_pid() AS pid")["pid"].iloc[0])


def _state(pid: int) -> str:
    with services.admin_connect() as conn:
        row = conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    assert row is not None, f"backend {pid} is gone"
    return str(row[0])


def test_a_login_reuses_its_connection_and_it_waits_outside_a_transaction(
    as_user: dict[str, Workbench],
) -> None:
    alice = as_user["alice"]
    first = _pid(alice)
    assert alice.read_table("metrics")["label"].tolist()  # a read in between
    assert _pid(alice) == first
    assert _state(first) == "idle"  # not "idle in transaction": it holds no locks or snapshot


def test_session_state_does_not_survive_the_call(as_user: dict[str, Workbench]) -> None:
    alice = as_user["alice"]
    pid = _pid(alice)
    alice.sql("SELECT set_config('application_name', 'changed-by-a-cell', false) AS v")
    alice.sql("SELECT set_config('search_path', 'pg_temp', false) AS v")
    alice.sql("CREATE TEMP TABLE scratch AS SELECT 1 AS x")
    after = alice.sql(
        "SELECT pg_backend_pid() AS pid, current_setting('application_name') AS app, "
        "current_setting('search_path') AS path, to_regclass('pg_temp.scratch') IS NULL AS gone"
    ).iloc[0]
    assert int(after["pid"]) == pid  # the same pooled connection ...
    assert after["app"] != "changed-by-a-cell"  # ... with nothing left of the previous calls
    assert "pg_temp" not in after["path"].split(", ")[:1]
    assert bool(after["gone"]) is True


def test_logins_never_share_a_connection(as_user: dict[str, Workbench]) -> None:
    alice, bob = as_user["alice"], as_user["bob"]
    pid_a = _pid(alice)
    seen = bob.sql("SELECT pg_backend_pid() AS pid, session_user AS who")
    assert int(seen["pid"].iloc[0]) != pid_a
    assert set(bob.read_table("metrics")["label"]) == {"b1", "b2", "b3"}
    assert set(alice.read_table("metrics")["label"]) == {"a1", "a2"}


def test_a_connection_the_server_dropped_is_replaced(as_user: dict[str, Workbench]) -> None:
    alice = as_user["alice"]
    pid = _pid(alice)
    with services.admin_connect() as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
    assert set(alice.read_table("metrics")["label"]) == {"a1", "a2"}  # no error
    assert _pid(alice) != pid


def test_a_failed_call_leaves_the_pooled_connection_usable(as_user: dict[str, Workbench]) -> None:
    alice = as_user["alice"]
    pid = _pid(alice)
    with pytest.raises(DataError, match="division by zero"):
        alice.sql("SELECT 1 / 0 AS x")
    assert _pid(alice) == pid
    assert _state(pid) == "idle"
