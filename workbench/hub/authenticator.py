"""Sign-in to JupyterHub with Workbench accounts, and each spawned server's own login.

:class:`WorkbenchAuthenticator` (``c.JupyterHub.authenticator_class = "workbench"``) checks
passwords exactly as the dashboards do (argon2id, the per-account lock, the per-address
throttle, one message for a wrong name or password), maps Workbench teams to hub groups and
refuses a disabled account on every refresh, so its server is not respawned.

Who holds what: the hub process holds the master key and the service's login (it decrypts
an analyst's database password). A single-user server gets one file, readable by its system
user only, holding that analyst's own database URL (``WORKBENCH_DATABASE_URL_FILE``); the file
is removed when the server stops. A spawner configured to pass on any Workbench setting of the
hub's environment, or a secret in its ``environment``, is refused before it starts.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import pwd
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyterhub.auth import Authenticator
from sqlalchemy import select
from tornado import web
from traitlets import CaselessStrEnum, Unicode, default
from traitlets import Set as SetTrait

from workbench.accounts.errors import AuthenticationError
from workbench.accounts.teams import teams_of
from workbench.accounts.users import authenticate
from workbench.core.config import ENV_PREFIX, SECRET_FIELDS, load_settings
from workbench.dashboards.auth import WRONG_CREDENTIALS
from workbench.dashboards.errors import SignInThrottledError
from workbench.dashboards.throttle import AddressThrottle
from workbench.db import rls
from workbench.db.identity_connect import user_database_url
from workbench.db.models import Role, User
from workbench.hub.errors import HubError, HubSecretError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from workbench.app import Workbench

__all__ = ["CREDENTIALS_VARIABLE", "URL_VARIABLE", "WorkbenchAuthenticator", "secret_variables"]

#: The one variable a single-user server gets from Workbench: the path of its login's file
#: (``credentials = "file"``), or the login's URL itself (``"environment"``, for container
#: spawners such as KubeSpawner, whose server runs in a pod of its own).
CREDENTIALS_VARIABLE = f"{ENV_PREFIX}DATABASE_URL_FILE"
URL_VARIABLE = f"{ENV_PREFIX}DATABASE_URL"
#: Where a spawner keeps what this authenticator gave its current server.
_GIVEN = "_workbench_login"


def secret_variables() -> frozenset[str]:
    """Every environment variable that carries a secret setting, directly or as a file path."""
    names = {f"{ENV_PREFIX}{field.upper()}" for field in SECRET_FIELDS}
    return frozenset(names | {f"{name}_FILE" for name in names})


def _system_account(spawner: Any) -> pwd.struct_passwd | None:
    """The system account the spawner runs the server as, when it runs one on this machine."""
    name = getattr(spawner, "system_user", None)
    if not isinstance(name, str):
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise HubError(
            f"The system user {name!r} for {spawner.user.name}'s server does not exist: create "
            "it (useradd), or set WorkbenchSpawner.system_user_template."
        ) from None


class WorkbenchAuthenticator(Authenticator):  # type: ignore[misc]
    """Workbench accounts for JupyterHub; team mode (PostgreSQL) only."""

    roles = SetTrait(
        {Role.ANALYST.value, Role.ADMIN.value},
        config=True,
        help="Workbench roles that may sign in (viewers have the dashboards).",
    )
    credentials = CaselessStrEnum(
        ["file", "environment"],
        "file",
        config=True,
        help="How a server gets its analyst's own database URL: a 0600 file of its system user "
        "(local spawners), or WORKBENCH_DATABASE_URL in its environment (a spawner that "
        "starts each server in a container of its own, such as KubeSpawner).",
    )
    credentials_dir = Unicode(
        "",
        config=True,
        help="Folder for the servers' login files (default: a private temporary folder). "
        "It must be traversable (x) by the servers' system users and writable by the hub only.",
    )

    @default("manage_groups")
    def _manage_groups(self) -> bool:
        return True  # a user's hub groups are their Workbench teams

    @default("allow_all")
    def _allow_all(self) -> bool:
        return True  # any active account of an allowed role (checked in authenticate)

    @default("refresh_pre_spawn")
    def _refresh_pre_spawn(self) -> bool:
        return True  # a disabled account's server is never (re)spawned

    @default("auth_refresh_age")
    def _auth_refresh_age(self) -> int:
        return 60  # as often as the dashboards recheck an identity

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.throttle = AddressThrottle()
        self._workbench: Workbench | None = None
        self._folder: Path | None = None

    @property
    def workbench(self) -> Workbench:
        """The service's workbench (the hub's own settings: its key and login)."""
        if self._workbench is None:
            from workbench.app import Workbench

            workbench = Workbench(load_settings())
            with workbench.engine.connect() as connection:
                rls.require_postgresql(connection, "JupyterHub sign-in")
            self._workbench = workbench
        return self._workbench

    def close(self) -> None:
        """Close the service's connections (the hub's process ends them too)."""
        if self._workbench is not None:
            self._workbench.close()
            self._workbench = None

    def normalize_username(self, username: str) -> str:
        """Workbench names are kept as they are (JupyterHub would lower-case them)."""
        return username.strip()

    # -- signing in -------------------------------------------------------------------------

    def _model(self, session: Session, user: User) -> dict[str, Any] | None:
        """The hub's model of an active account whose role may have a server; ``None``
        otherwise (sign-in says why; a refresh signs the user out)."""
        if not user.is_active or user.role not in self.roles:
            return None
        return {"name": user.username, "groups": sorted(teams_of(session, user))}

    async def authenticate(self, handler: web.RequestHandler, data: dict[str, str]) -> Any:
        username = (data.get("username") or "").strip()
        password = data.get("password") or ""
        address = handler.request.remote_ip or ""
        try:  # before any password is checked: a refused address costs no argon2 work
            self.throttle.check(address)
        except SignInThrottledError as exc:
            handler.set_header("Retry-After", str(exc.retry_after))
            raise web.HTTPError(429, str(exc)) from None

        def check() -> dict[str, Any]:
            with self.workbench.session() as session:
                user = authenticate(session, username, password)  # refuses the inactive
                model = self._model(session, user)
            if model is None:
                raise web.HTTPError(
                    403,
                    "Your Workbench account opens dashboards only; ask your Workbench "
                    "administrator for an analyst's account to use JupyterLab.",
                )
            return model

        try:
            return await asyncio.to_thread(check)
        except AuthenticationError:
            self.throttle.failed(address)
            raise web.HTTPError(403, WRONG_CREDENTIALS) from None

    def _current(self, username: str) -> dict[str, Any] | None:
        with self.workbench.session() as session:
            user = session.scalar(select(User).where(User.username == username))
            return None if user is None else self._model(session, user)

    async def refresh_user(self, user: Any, handler: Any = None) -> Any:
        """The account as it is now; ``False`` (sign in again, which then fails) for one that
        was disabled, removed or lost its role since."""
        model = await asyncio.to_thread(self._current, user.name)
        return False if model is None else model

    # -- what a spawned server gets ---------------------------------------------------------

    def _credentials_folder(self) -> Path:
        if self._folder is None:
            if self.credentials_dir:
                folder = Path(self.credentials_dir)
                folder.mkdir(mode=0o711, parents=True, exist_ok=True)
            else:
                folder = Path(tempfile.mkdtemp(prefix="workbench-hub-"))
                atexit.register(shutil.rmtree, folder, ignore_errors=True)
            folder.chmod(0o711)  # servers open their own file by name; nobody lists them
            self._folder = folder
        return self._folder

    @staticmethod
    def _refuse_service_secrets(spawner: Any) -> None:
        secret = secret_variables()
        kept = sorted(name for name in spawner.env_keep if name.startswith(ENV_PREFIX))
        given = sorted(name for name in spawner.environment if name in secret)
        if kept or given:
            raise HubSecretError(
                f"{spawner.user.name}'s server would be handed {', '.join(kept + given)} "
                "(Spawner.env_keep or Spawner.environment), and so would every kernel it "
                "starts. Remove them: the hub gives each server its own login only."
            )

    def _user_url(self, username: str) -> str:
        workbench = self.workbench
        with workbench.session() as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None or not user.is_active:
                raise HubError(f"{username} is not an active Workbench account.")
            url = user_database_url(workbench.settings, user, workbench.database_url)
        return url.render_as_string(hide_password=False)

    @staticmethod
    def _take_back(spawner: Any) -> None:
        """Remove the login handed to the spawner's last server (its file, its variable)."""
        given: tuple[str, str] | None = getattr(spawner, _GIVEN, None)
        if given is None:
            return
        name, value = given
        if spawner.environment.get(name) == value:
            spawner.environment = {k: v for k, v in spawner.environment.items() if k != name}
        if name == CREDENTIALS_VARIABLE:
            Path(value).unlink(missing_ok=True)
        setattr(spawner, _GIVEN, None)

    def _write_file(self, spawner: Any, url: str) -> str:
        account = _system_account(spawner)
        # A random name per spawn: nobody can guess it, and no earlier file is reused.
        path = self._credentials_folder() / f"{uuid.uuid4().hex}.url"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            if account is not None and os.geteuid() == 0:
                os.fchown(fd, account.pw_uid, account.pw_gid)
            os.write(fd, url.encode())
        finally:
            os.close(fd)
        return str(path)

    async def pre_spawn_start(self, user: Any, spawner: Any) -> None:
        """Give the server its analyst's own database URL (a file only its system user can
        read, or a variable of its own container), after refusing any secret of the hub's."""
        self._take_back(spawner)
        self._refuse_service_secrets(spawner)
        url = await asyncio.to_thread(self._user_url, user.name)
        if self.credentials == "environment":
            given = (URL_VARIABLE, url)
        else:
            given = (CREDENTIALS_VARIABLE, self._write_file(spawner, url))
        spawner.environment = {**spawner.environment, given[0]: given[1]}
        setattr(spawner, _GIVEN, given)

    def post_spawn_stop(self, user: Any, spawner: Any) -> None:
        """Remove the stopped server's login."""
        self._take_back(spawner)
