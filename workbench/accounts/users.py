"""Accounts: password hashing, sign-in with throttling, and per-user database logins.

Hashes use argon2-cffi's RFC 9106 low-memory profile (argon2id, 64 MiB, t=3, p=4), above the
OWASP minimum (19 MiB, t=2, p=1). bcrypt hashes from the earlier system still verify and are
replaced by argon2id at the next successful sign-in. Sign-in answers a wrong password, an
unknown user, a disabled and a locked account with one message and about the same work.
On PostgreSQL every account also gets its own login role (see :mod:`workbench.db.roles`),
whose generated password is stored encrypted with the "db-credentials" key.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from workbench.accounts.errors import AccountError, AuthenticationError
from workbench.core.config import Settings
from workbench.core.crypto import encryptor
from workbench.db import roles
from workbench.db.identity_connect import CREDENTIALS_PURPOSE
from workbench.db.models import AuditEntry, Role, User
from workbench.db.rls import require_postgresql
from workbench.db.types import utcnow

__all__ = [
    "MAX_FAILED_LOGINS",
    "MIN_PASSWORD_LENGTH",
    "NewAccount",
    "authenticate",
    "create_user",
    "disable_user",
    "end_sessions",
    "generate_password",
    "get_user",
    "hash_password",
    "needs_rehash",
    "provision_database_login",
    "set_password",
    "verify_password",
]

MIN_PASSWORD_LENGTH = 12
#: Consecutive failures after which each further attempt waits (30 s, doubling, 15 min cap).
MAX_FAILED_LOGINS = 5
LOCK_BASE = timedelta(seconds=30)
LOCK_MAX = timedelta(minutes=15)
_hasher = PasswordHasher()
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


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
    """Check an argon2id hash, or a bcrypt hash of the earlier system."""
    if password_hash.startswith(_BCRYPT_PREFIXES):
        # bcrypt reads at most 72 bytes; the earlier system truncated silently, so do we.
        secret = password.encode("utf-8")[:72]
        try:
            return bcrypt.checkpw(secret, password_hash.encode("ascii"))
        except ValueError:
            return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True for bcrypt hashes and argon2 hashes below the current parameters."""
    if password_hash.startswith(_BCRYPT_PREFIXES):
        return True
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so that costs the same."""
    return _hasher.hash(generate_password())


def _valid_username(username: str) -> str:
    if (
        not username
        or len(username) > 64
        or not username.replace("_", "").replace("-", "").isalnum()
    ):
        raise AccountError(
            f"User name {username!r} is not valid: use up to 64 letters, digits, '-' and '_'."
        )
    return username


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise AccountError(f"There is no user {username!r}; see `workbench users list`.")
    return user


def create_user(
    session: Session,
    username: str,
    *,
    role: Role = Role.ANALYST,
    password: str | None = None,
    settings: Settings | None = None,
) -> NewAccount:
    """Create an account; with no password given, one is generated and returned once.

    With ``settings`` on PostgreSQL the account also gets its own database login role, in
    the same transaction.
    """
    _valid_username(username)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError(f"User {username!r} already exists; choose another name.")
    generated = generate_password() if password is None else None
    user = User(
        username=username, role=role, password_hash=hash_password(password or generated or "")
    )
    session.add(user)
    session.flush()
    session.add(AuditEntry(action="user.create", target=username, details={"role": role.value}))
    if settings is not None and session.get_bind().dialect.name == "postgresql":
        provision_database_login(session, settings, user)
    return NewAccount(user=user, password=generated)


def provision_database_login(session: Session, settings: Settings, user: User) -> None:
    """Create the user's login role, or give it a new password: rotation of credentials.

    The password is random, stored encrypted, and never shown: Workbench hands it only to
    the user's own connections (:mod:`workbench.db.identity_connect`).
    """
    connection = session.connection()
    require_postgresql(connection, "Database credentials")
    password = secrets.token_urlsafe(32)
    sealed = encryptor(settings, CREDENTIALS_PURPOSE).encrypt(password)
    exists = user.db_role is not None and (
        connection.exec_driver_sql(
            "SELECT 1 FROM pg_roles WHERE rolname = %(r)s", {"r": user.db_role}
        ).first()
        is not None
    )
    if user.db_role is not None and exists:
        roles.set_role_password(connection, user.db_role, password)
    else:
        user.db_role = roles.login_role_name(user.username)
        roles.create_login_role(connection, user.db_role, password, user.role)
        if not user.is_active:
            roles.set_login_allowed(connection, user.db_role, False)
    user.db_password_encrypted = sealed
    end_sessions(session, user.id)
    session.add(AuditEntry(action="user.rotate_credentials", target=user.username))
    session.flush()


def end_sessions(session: Session, user_id: uuid.UUID) -> None:
    """End every dashboard session of the user, on every server, from the next request on.

    Raises ``users.session_generation`` in the database (one atomic ``UPDATE``); a session
    cookie names the generation it was signed with, and the servers read the current one on
    every request (:mod:`workbench.dashboards.auth`).
    """
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(session_generation=User.session_generation + 1)
        .execution_options(synchronize_session="fetch")
    )


def set_password(session: Session, username: str, password: str | None = None) -> str | None:
    """Set a new sign-in password (``None``: generate one, returned once); unlocks the account
    and ends the user's dashboard sessions."""
    user = get_user(session, username)
    generated = generate_password() if password is None else None
    user.password_hash = hash_password(password or generated or "")
    user.failed_logins = 0
    user.locked_until = None
    end_sessions(session, user.id)
    session.add(AuditEntry(action="user.passwd", target=username))
    return generated


def disable_user(session: Session, username: str) -> User:
    """Disable sign-in and database login; the row-level policies stop matching at once, and
    the user's dashboard sessions end."""
    user = get_user(session, username)
    user.is_active = False
    end_sessions(session, user.id)
    if user.db_role is not None and session.get_bind().dialect.name == "postgresql":
        roles.set_login_allowed(session.connection(), user.db_role, False)
    session.add(AuditEntry(action="user.disable", target=username))
    return user


def _lock_delay(failures: int) -> timedelta:
    over = max(failures - MAX_FAILED_LOGINS, 0)
    delay: timedelta = LOCK_BASE * (2 ** min(over, 10))
    return min(delay, LOCK_MAX)


def authenticate(session: Session, username: str, password: str) -> User:
    """The active user with this password, or :class:`AuthenticationError` (one message).

    Commits the attempt's bookkeeping itself (failure counts, lock, rehash), so call it on a
    session without a transaction of the caller's.
    """
    now = utcnow()
    user = session.scalar(select(User).where(User.username == username).with_for_update())
    if user is None or user.password_hash is None:
        verify_password(_dummy_hash(), password)
        session.add(AuditEntry(action="user.login_failed", target=username[:200]))
        session.commit()
        raise AuthenticationError()
    matches = verify_password(user.password_hash, password)
    locked = user.locked_until is not None and user.locked_until > now
    if matches and user.is_active and not locked:
        if needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        user.failed_logins = 0
        user.locked_until = None
        user.last_login_at = now
        session.add(AuditEntry(action="user.login", actor_id=user.id, target=username))
        session.commit()
        return user
    if user.is_active and not locked:
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + _lock_delay(user.failed_logins)
    session.add(AuditEntry(action="user.login_failed", target=username))
    session.commit()
    raise AuthenticationError()
