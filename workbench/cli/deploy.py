"""`workbench deploy`: what a container deployment needs before it starts.

`workbench deploy secrets DIR` writes the secret files the compose file and the Kubernetes
Secret read (the secret key, the database password and the database URL holding it), so no
default credential is ever typed into a deployment.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import typer
from rich.markup import escape

from workbench.cli.common import WorkbenchTyper, console, write_private
from workbench.cli.errors import SecretFilesError, SecretFilesExistError
from workbench.core.home import generate_secret_key

__all__ = [
    "SECRET_FILES",
    "app",
    "database_url",
    "write_deploy_secrets",
]

app = WorkbenchTyper(
    help="Prepare a deployment: the secret files its services read.",
    no_args_is_help=True,
)

#: The files `deploy secrets` writes, in the order it writes them.
SECRET_FILES = ("secret_key", "postgres_password", "database_url")
DATABASE_PORT = 5432


def database_url(*, user: str, password: str, host: str, name: str) -> str:
    """The PostgreSQL URL Workbench connects with, its user and password URL-quoted."""
    return (
        f"postgresql+psycopg://{quote(user, safe='')}:{quote(password, safe='')}"
        f"@{host}:{DATABASE_PORT}/{quote(name, safe='')}"
    )


def write_deploy_secrets(
    directory: Path,
    *,
    database_host: str,
    database_name: str,
    database_user: str,
    force: bool = False,
) -> list[Path]:
    """Write fresh secret files into ``directory`` (created 0700); return their paths.

    Refuses, writing nothing, when one of the files exists and ``force`` is false.
    """
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=False)
    except FileExistsError:
        if not directory.is_dir():
            raise SecretFilesExistError(
                f"{directory} exists and is not a folder: give the path of a folder "
                "(it is created when missing)."
            ) from None
    except OSError as exc:
        raise SecretFilesError(
            f"Cannot create the folder {directory} ({exc.strerror or exc})."
        ) from None
    else:
        directory.chmod(0o700)  # whatever the umask took away or kept
    paths = [directory / name for name in SECRET_FILES]
    existing = [p for p in paths if p.exists() or p.is_symlink()]
    if existing and not force:
        names = ", ".join(str(p) for p in existing)
        raise SecretFilesExistError(
            f"Refusing to overwrite existing secret files ({names}). Pass --force to write "
            "new values over them (services using the old ones then need the new ones too)."
        )
    password = secrets.token_urlsafe(32)
    values = {
        "secret_key": generate_secret_key(),
        "postgres_password": password,
        "database_url": database_url(
            user=database_user, password=password, host=database_host, name=database_name
        ),
    }
    try:
        for path in paths:
            write_private(path, values[path.name], force=force)
    except OSError as exc:
        raise SecretFilesError(
            f"Cannot write the secret files in {directory} ({exc.strerror or exc})."
        ) from None
    return paths


def _check_host(value: str) -> str:
    if not value or any(c in value for c in "/@:?#[] ") or value != value.strip():
        raise typer.BadParameter("give a host name or IPv4 address, without port or path.")
    return value


def _check_not_empty(value: str) -> str:
    if not value:
        raise typer.BadParameter("must not be empty.")
    return value


@app.command("secrets")
def secrets_command(
    directory: Annotated[
        Path,
        typer.Argument(metavar="DIR", help="Folder to write the files into (created mode 0700)."),
    ],
    database_host: Annotated[
        str, typer.Option(help="Host name of the PostgreSQL server.", callback=_check_host)
    ] = "postgres",
    database_name: Annotated[
        str, typer.Option(help="Name of the database.", callback=_check_not_empty)
    ] = "workbench",
    database_user: Annotated[
        str, typer.Option(help="Database account Workbench logs in as.", callback=_check_not_empty)
    ] = "workbench",
    force: Annotated[
        bool, typer.Option("--force", help="Replace existing files with new values.")
    ] = False,
) -> None:
    """Write secret_key, postgres_password and database_url (mode 0600) into DIR.

    The values are random and never printed; only the file names are.
    """
    paths = write_deploy_secrets(
        directory,
        database_host=database_host,
        database_name=database_name,
        database_user=database_user,
        force=force,
    )
    console.print(f"wrote (mode 0600) in {escape(str(directory))}:", soft_wrap=True)
    for path in paths:
        console.print("  " + escape(path.name), highlight=False)
