from __future__ import annotations

import pytest

from workbench.core.config import load_settings
from workbench.core.crypto import Encryptor, encryptor
from workbench.core.errors import ConfigError, DecryptionError

KEY = "k3y-for-tests-" + "abcdefghij" * 4


def test_round_trip_and_ciphertext_hides_the_value() -> None:
    enc = Encryptor(KEY, "db-credentials")
    token = enc.encrypt("pässwörd-42")
    assert b"42" not in token
    assert enc.decrypt(token) == "pässwörd-42"


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
