"""Accounts on both databases: sign-in, one message for every failure, throttling, bcrypt."""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Iterator
from datetime import timedelta

import bcrypt
import pytest
from sqlalchemy import update

from workbench.accounts import api as accounts
from workbench.accounts.errors import AccountError, AuthenticationError
from workbench.accounts.users import MAX_FAILED_LOGINS, get_user
from workbench.app import Workbench
from workbench.core.config import load_settings
from workbench.db.errors import MultiUserError
from workbench.db.models import Role, User
from workbench.db.types import utcnow

PASSWORD = "correct horse battery staple"


@pytest.fixture
def bench(db_url: str, isolated_env: object) -> Iterator[Workbench]:
    wb = Workbench(load_settings(secret_key=secrets.token_urlsafe(48)), db_url)
    made: list[str] = []
    yield wb
    if wb.engine.dialect.name == "postgresql":
        with wb.session() as session:
            made = [u.db_role for u in session.query(User) if u.db_role]
    wb.close()
    if made:
        from tests.integration.test_rls_policies import _drop_roles

        _drop_roles(db_url.rsplit("/", 1)[1], made)


def _user(bench: Workbench, username: str) -> User:
    with bench.session() as session:
        return get_user(session, username)


def _failure_message(bench: Workbench, username: str, password: str) -> str:
    with pytest.raises(AuthenticationError) as caught:
        accounts.login(username, password, workbench=bench)
    return str(caught.value)


def test_every_failure_gets_the_same_message(bench: Workbench) -> None:
    accounts.add_user("ada", password=PASSWORD, workbench=bench)
    accounts.add_user("gone", password=PASSWORD, workbench=bench)
    accounts.disable_user("gone", workbench=bench)
    assert accounts.login("ada", PASSWORD, workbench=bench).username == "ada"
    messages = {
        _failure_message(bench, "ada", PASSWORD + "!"),
        _failure_message(bench, "nobody", PASSWORD),
        _failure_message(bench, "gone", PASSWORD),
    }
    assert len(messages) == 1
    message = messages.pop()
    assert "ada" not in message
    assert "nobody" not in message
    assert "exist" not in message


def test_repeated_failures_lock_with_a_growing_delay(bench: Workbench) -> None:
    accounts.add_user("eve", password=PASSWORD, workbench=bench)
    for _ in range(MAX_FAILED_LOGINS):
        _failure_message(bench, "eve", "wrong password here")
    locked = _user(bench, "eve")
    assert locked.failed_logins == MAX_FAILED_LOGINS
    assert locked.locked_until is not None
    first_delay = locked.locked_until - utcnow()
    assert timedelta(seconds=1) < first_delay <= timedelta(seconds=30)
    # While locked even the right password is refused, with the same message.
    assert _failure_message(bench, "eve", PASSWORD) == _failure_message(bench, "x", PASSWORD)
    # When the delay has passed, another failure locks for longer.
    with bench.session() as session, session.begin():
        session.execute(update(User).where(User.username == "eve").values(locked_until=utcnow()))
    _failure_message(bench, "eve", "wrong password again")
    relocked = _user(bench, "eve")
    assert relocked.locked_until is not None
    assert relocked.locked_until - utcnow() > first_delay + timedelta(seconds=20)
    # The right password after the delay signs in and clears the counters.
    with bench.session() as session, session.begin():
        session.execute(update(User).where(User.username == "eve").values(locked_until=utcnow()))
    accounts.login("eve", PASSWORD, workbench=bench)
    cleared = _user(bench, "eve")
    assert (cleared.failed_logins, cleared.locked_until) == (0, None)
    assert cleared.last_login_at is not None


def test_bcrypt_hashes_verify_and_are_upgraded(bench: Workbench) -> None:
    accounts.add_user("old", password=PASSWORD, workbench=bench)
    legacy = bcrypt.hashpw(b"legacy password 1", bcrypt.gensalt(rounds=4)).decode()
    with bench.session() as session, session.begin():
        session.execute(update(User).where(User.username == "old").values(password_hash=legacy))
    _failure_message(bench, "old", "not the legacy one")
    assert _user(bench, "old").password_hash == legacy
    accounts.login("old", "legacy password 1", workbench=bench)
    upgraded = _user(bench, "old").password_hash
    assert upgraded is not None and upgraded.startswith("$argon2id$")
    accounts.login("old", "legacy password 1", workbench=bench)


def test_unknown_and_known_users_take_about_the_same_time(bench: Workbench) -> None:
    accounts.add_user("tim", password=PASSWORD, workbench=bench)

    def timed(username: str) -> float:
        start = time.perf_counter()
        _failure_message(bench, username, "a wrong password")
        return time.perf_counter() - start

    timed("nobody-at-all")  # warm the dummy hash
    # Interleaved, so a burst of load on a shared machine slows both sides alike.
    pairs = [(timed("tim"), timed("nobody-at-all")) for _ in range(9)]
    known = statistics.median(k for k, _ in pairs)
    unknown = statistics.median(u for _, u in pairs)
    # Without a dummy verification the unknown user would answer ~100x faster; the band is
    # wide because CI shares two cores with other work, narrow enough to catch that.
    assert 1 / 3 < unknown / known < 3.0, pairs


def test_short_passwords_and_bad_names_are_refused(bench: Workbench) -> None:
    with pytest.raises(AccountError, match="at least 12"):
        accounts.add_user("shorty", password="short-pass", workbench=bench)
    with pytest.raises(AccountError, match="not valid"):
        accounts.add_user("no spaces", password=PASSWORD, workbench=bench)
    accounts.add_user("fine", password=PASSWORD, workbench=bench)
    with pytest.raises(AccountError, match="already exists"):
        accounts.add_user("fine", password=PASSWORD, workbench=bench)
    with pytest.raises(AccountError, match="at least 12"):
        accounts.set_password("fine", "too-short", workbench=bench)


def test_generated_password_and_passwd(bench: Workbench) -> None:
    account = accounts.add_user("gen", role=Role.VIEWER, workbench=bench)
    assert account.password is not None
    accounts.login("gen", account.password, workbench=bench)
    new = accounts.set_password("gen", workbench=bench)
    assert new is not None and new != account.password
    _failure_message(bench, "gen", account.password)
    accounts.login("gen", new, workbench=bench)
    listed = {u.username: u for u in accounts.list_users(workbench=bench)}
    assert listed["gen"].role is Role.VIEWER
    assert listed["gen"].has_database_login is (bench.engine.dialect.name == "postgresql")


def test_multi_user_features_need_postgresql(sqlite_url: str, isolated_env: object) -> None:
    bench = Workbench(load_settings(secret_key=secrets.token_urlsafe(48)), sqlite_url)
    try:
        accounts.add_user("solo", password=PASSWORD, workbench=bench)  # dashboard sign-in works
        for attempt in (
            lambda: accounts.add_team("red", workbench=bench),
            lambda: accounts.list_teams(workbench=bench),
            lambda: accounts.rotate_credentials("solo", workbench=bench),
            lambda: accounts.share("airports", workbench=bench),
            lambda: accounts.add_user("duo", password=PASSWORD, teams_=("red",), workbench=bench),
        ):
            with pytest.raises(MultiUserError, match="PostgreSQL") as caught:
                attempt()
            assert "single-user" in str(caught.value)
        assert [u.username for u in accounts.list_users(workbench=bench)] == ["solo"]
    finally:
        bench.close()
