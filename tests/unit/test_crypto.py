from __future__ import annotations

import base64

import pytest

from workbench.core.config import load_settings
from workbench.core.crypto import Encryptor, encryptor
from workbench.core.errors import ConfigError, DecryptionError

KEY = "k3y-for-tests-" + "abcdefghij" * 4


def test_round_trip_and_ciphertext_hides_the_value() -> None:
    """Neither the token nor its decoded bytes hold the value (a random token may hold any two
    characters, so the value is long enough never to appear by chance)."""
    enc = Encryptor(KEY, "db-credentials")
    value = "pässwörd-" + "7" * 24
    token = enc.encrypt(value)
    for part in (value, value[-12:]):
        assert part.encode() not in token
        assert part.encode() not in base64.urlsafe_b64decode(token)
    assert enc.decrypt(token) == value


def test_purposes_do_not_share_keys() -> None:
    token = Encryptor(KEY, "db-credentials").encrypt("value")
    with pytest.raises(DecryptionError, match="secret key differs"):
        Encryptor(KEY, "notebook-secrets").decrypt(token)


def test_changed_secret_key_is_a_clear_error() -> None:
    token = Encryptor(KEY, "p").encrypt("value")
    with pytest.raises(DecryptionError):
        Encryptor(KEY + "x", "p").decrypt(token)


def test_no_key_configured(isolated_env: object) -> None:
    with pytest.raises(ConfigError, match="workbench init"):
        encryptor(load_settings(), "p")


def test_key_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_SECRET_KEY", KEY)
    token = encryptor(load_settings(), "p").encrypt("v")
    assert Encryptor(KEY, "p").decrypt(token) == "v"
