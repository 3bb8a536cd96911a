"""The notebook secret store: named values, encrypted with the workbench key.

A run parameter ``secret:NAME`` is injected as ``resolve("NAME")``, so the value is read
inside the kernel at run time and never written into the notebook, its metadata or the run
record. :func:`resolve` reads the settings from the kernel's environment, which the runner
sets to the same home and database as the process that started the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from workbench.core.crypto import encryptor
from workbench.db.models import Secret
from workbench.db.types import utcnow
from workbench.runs.errors import SecretNotFoundError

if TYPE_CHECKING:
    from workbench.app import Workbench

__all__ = [
    "PURPOSE",
    "delete_secret",
    "list_secrets",
    "read_secret",
    "resolve",
    "secret_exists",
    "set_secret",
]

PURPOSE = "notebook-secrets"


def set_secret(wb: Workbench, name: str, value: str) -> None:
    """Store (or replace) the secret ``name``."""
    token = encryptor(wb.settings, PURPOSE).encrypt(value)
    with wb.session() as session, session.begin():
        row = session.scalar(select(Secret).where(Secret.name == name))
        if row is None:
            session.add(Secret(name=name, value_encrypted=token))
        else:
            row.value_encrypted = token
            row.updated_at = utcnow()


def delete_secret(wb: Workbench, name: str) -> None:
    """Remove the secret ``name``; an unknown name is an error."""
    with wb.session() as session, session.begin():
        result = session.execute(delete(Secret).where(Secret.name == name))
        if not getattr(result, "rowcount", 0):
            raise SecretNotFoundError(f"No secret named {name!r} is stored.")


def list_secrets(wb: Workbench) -> list[str]:
    """The names of the stored secrets (never their values)."""
    with wb.session() as session:
        return list(session.scalars(select(Secret.name).order_by(Secret.name)))


def secret_exists(wb: Workbench, name: str) -> bool:
    with wb.session() as session:
        return session.scalar(select(Secret.id).where(Secret.name == name)) is not None


def read_secret(wb: Workbench, name: str) -> str:
    """The value of secret ``name`` in ``wb``'s store; an unknown name says how to add it."""
    with wb.session() as session:
        token = session.scalar(select(Secret.value_encrypted).where(Secret.name == name))
    if token is None:
        raise SecretNotFoundError(
            f"No secret named {name!r} is stored; add it with `workbench secrets set {name}`."
        )
    return encryptor(wb.settings, PURPOSE).decrypt(token)


def resolve(name: str) -> str:
    """The value of secret ``name``, read from the store of the current workbench.

    Called by the injected parameters cell inside the kernel.
    """
    from workbench.app import default

    return read_secret(default(), name)
