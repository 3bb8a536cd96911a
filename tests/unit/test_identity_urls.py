"""The URL a user's own processes get: their login role, their decrypted password, or a refusal."""

from __future__ import annotations

import secrets

import pytest

from workbench.core.config import Settings, load_settings
from workbench.core.crypto import encryptor
from workbench.db.errors import NoDatabaseIdentityError
from workbench.db.identity_connect import CREDENTIALS_PURPOSE, user_database_url
from workbench.db.models import Role, User

BASE = "postgresql+psycopg://owner:ownerpw@db.example:5432/workbench"


@pytest.fixture
def keyed(isolated_env: object) -> Settings:
    return load_settings(secret_key=secrets.token_urlsafe(48))


def _user(settings: Settings, password: str = "", **fields: object) -> User:
    password = password or secrets.token_urlsafe(16)
    sealed = encryptor(settings, CREDENTIALS_PURPOSE).encrypt(password)
    values: dict[str, object] = {
        "username": "ann",
        "role": Role.ANALYST,
        "is_active": True,
        "db_role": "wbu_ann_0123abcd",
        "db_password_encrypted": sealed,
    }
    values.update(fields)
    return User(**values)


def test_the_url_logs_in_as_the_user(keyed: Settings) -> None:
    password = secrets.token_urlsafe(16)
    url = user_database_url(keyed, _user(keyed, password), BASE)
    assert url.username == "wbu_ann_0123abcd"
    assert url.password == password
    assert (url.host, url.database) == ("db.example", "workbench")
    assert password not in repr(url)


def test_refusals(keyed: Settings) -> None:
    with pytest.raises(NoDatabaseIdentityError, match="rotate-credentials ann"):
        user_database_url(keyed, _user(keyed, db_role=None), BASE)
    with pytest.raises(NoDatabaseIdentityError, match="disabled"):
        user_database_url(keyed, _user(keyed, is_active=False), BASE)
    with pytest.raises(NoDatabaseIdentityError, match="single-user"):
        user_database_url(keyed, _user(keyed), "sqlite:///x.db")


def test_another_secret_key_cannot_decrypt(keyed: Settings, isolated_env: object) -> None:
    from workbench.core.errors import DecryptionError

    user = _user(keyed)
    other = load_settings(secret_key=secrets.token_urlsafe(48))
    with pytest.raises(DecryptionError):
        user_database_url(other, user, BASE)
