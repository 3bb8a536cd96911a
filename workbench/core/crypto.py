"""Encryption of stored secrets with keys derived from the workbench secret key.

Each purpose (database credentials, the notebook secret store, ...) gets its own Fernet key,
derived with HKDF-SHA256, so one purpose's ciphertext cannot be replayed as another's.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from workbench.core.config import Settings
from workbench.core.errors import ConfigError, DecryptionError

__all__ = ["Encryptor", "encryptor", "hkdf_key", "require_secret_key"]


def hkdf_key(secret_key: str, purpose: str, *, salt: bytes = b"workbench-v1") -> bytes:
    """A 32-byte key for one ``purpose``, derived from the secret key with HKDF-SHA256."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=salt, info=f"workbench:{purpose}".encode()
    ).derive(secret_key.encode("utf-8"))


def require_secret_key(settings: Settings, needed_for: str) -> str:
    """The configured secret key, or a ConfigError saying what cannot work without one."""
    key, _ = settings.effective_secret_key()
    if not key:
        raise ConfigError(
            f"No secret key is configured, so {needed_for}: run `workbench init` or set "
            "WORKBENCH_SECRET_KEY_FILE."
        )
    return key


class Encryptor:
    """Encrypts and decrypts text for one purpose with a key derived from the secret key."""

    def __init__(self, secret_key: str, purpose: str) -> None:
        derived = hkdf_key(secret_key, purpose)
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))
        self.purpose = purpose

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode("utf-8")
        except InvalidToken:
            raise DecryptionError(
                f"A stored {self.purpose} value could not be decrypted: the workbench secret "
                "key differs from the one it was encrypted with. Restore the original key, or "
                "set the value again."
            ) from None


def encryptor(settings: Settings, purpose: str) -> Encryptor:
    """The :class:`Encryptor` for ``purpose`` under the configured secret key."""
    return Encryptor(require_secret_key(settings, "stored secrets cannot be encrypted"), purpose)
