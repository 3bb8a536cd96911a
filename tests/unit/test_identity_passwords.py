"""Password rules without a database: bcrypt compatibility, rehash decisions, lock delays."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import bcrypt
from argon2 import PasswordHasher

from workbench.accounts.users import (
    LOCK_BASE,
    LOCK_MAX,
    MAX_FAILED_LOGINS,
    _lock_delay,
    hash_password,
    needs_rehash,
    verify_password,
)
from workbench.db.roles import login_role_name


def test_bcrypt_hashes_of_the_earlier_system_verify() -> None:
    for prefix in (b"2a", b"2b"):
        legacy = bcrypt.hashpw(b"old system password", bcrypt.gensalt(4, prefix)).decode()
        assert verify_password(legacy, "old system password")
        assert not verify_password(legacy, "old system passworD")
        assert needs_rehash(legacy)


def test_long_passwords_match_the_earlier_truncation() -> None:
    long = "x" * 80
    legacy = bcrypt.hashpw(long.encode()[:72], bcrypt.gensalt(4)).decode()
    assert verify_password(legacy, long)


def test_weak_argon2_parameters_are_rehashed() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("weak params!!")
    assert verify_password(weak, "weak params!!")
    assert needs_rehash(weak)
    assert not needs_rehash(hash_password("strong params!!"))
    assert needs_rehash("garbage")


def test_lock_delay_grows_and_is_capped() -> None:
    delays = [_lock_delay(MAX_FAILED_LOGINS + n) for n in range(12)]
    assert delays[0] == LOCK_BASE
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert delays[1] == 2 * LOCK_BASE
    assert delays[-1] == LOCK_MAX
    assert timedelta(minutes=15) >= LOCK_MAX


def test_login_role_names_are_safe_and_distinct() -> None:
    names = {login_role_name("Ann-Marie_O") for _ in range(20)}
    assert len(names) == 20
    assert all(re.fullmatch(r"wbu_ann_marie_o_[0-9a-f]{8}", n) for n in names)
    assert len(login_role_name("a" * 64)) <= 63
