from __future__ import annotations

import pytest
from argon2 import extract_parameters
from argon2.low_level import Type

from workbench.accounts.errors import AccountError
from workbench.accounts.users import generate_password, hash_password, verify_password


def test_hashes_are_argon2id_above_the_owasp_minimum() -> None:
    params = extract_parameters(hash_password("correct horse battery"))
    assert params.type is Type.ID
    assert params.memory_cost >= 19 * 1024
    assert params.time_cost >= 2
    assert params.parallelism >= 1


def test_verify() -> None:
    h = hash_password("correct horse battery")
    assert verify_password(h, "correct horse battery")
    assert not verify_password(h, "correct horse batterY")
    assert not verify_password("not-a-hash", "correct horse battery")


def test_short_passwords_are_refused() -> None:
    with pytest.raises(AccountError, match="at least 12"):
        hash_password("short-pw")


def test_generated_passwords_are_long_and_distinct() -> None:
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) >= 24 for p in passwords)
