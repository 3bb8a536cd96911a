"""Accounts and passwords: argon2id hashing and user creation.

Hashes use argon2-cffi's RFC 9106 low-memory profile (argon2id, 64 MiB, t=3, p=4), above the
OWASP minimum (19 MiB, t=2, p=1). Generated passwords come from :mod:`secrets`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.db.models import AuditEntry, Role, User
from workbench.errors import WorkbenchError

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "AccountError",
    "NewAccount",
    "create_user",
    "generate_password",
    "hash_password",
    "verify_password",
]

MIN_PASSWORD_LENGTH = 12
_hasher = PasswordHasher()


class AccountError(WorkbenchError):
    """The account could not be created or changed."""


@dataclass(frozen=True)
class NewAccount:
    user: User
    password: str | None
    """The generated password, to be shown once; ``None`` when the caller supplied one."""


def generate_password() -> str:
    """A random password of 24 URL-safe characters (144 bits)."""
    return secrets.token_urlsafe(18)


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            f"The password is too short: use at least {MIN_PASSWORD_LENGTH} characters."
        )
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_user(
    session: Session,
    username: str,
    *,
    role: Role = Role.ANALYST,
    password: str | None = None,
) -> NewAccount:
    """Create an account; with no password given, one is generated and returned once."""
    if not username or not username.replace("_", "").replace("-", "").isalnum():
        raise AccountError(
            f"User name {username!r} is not valid: use letters, digits, '-' and '_'."
        )
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError(f"User {username!r} already exists; choose another name.")
    generated = generate_password() if password is None else None
    user = User(
        username=username, role=role, password_hash=hash_password(password or generated or "")
    )
    session.add(user)
    session.flush()
    session.add(AuditEntry(action="user.create", target=username, details={"role": role.value}))
    return NewAccount(user=user, password=generated)
