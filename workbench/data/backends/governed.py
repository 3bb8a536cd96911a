"""Writes in team mode: every table ``wb.write`` creates is protected in the same transaction.

Who writes decides how (see docs/security.md, "Tables written with wb.write"):

- **The service** (the owner role: the main job, ``workbench ingest`` run by an admin) creates
  the table and calls ``wb_private.protect_table`` (or ``protect_service_table`` for a table
  of no team) before the commit. ``replace`` swaps a staging table in and protects it again
  with the same team, owner and shares, all in one transaction, so no one ever sees it
  unprotected.
- **A user's own login** (analysts, admins in their notebooks) may not create tables: the
  ``SECURITY DEFINER`` function ``wb_private.create_team_table`` creates and protects it for
  one of the user's teams, then the rows arrive by the fast ADBC ingest as the user, under
  the policies. ``replace`` keeps the table and replaces the rows the user may change;
  ``upsert`` stages in a temporary table. Shares and keys go through definer functions that
  check the team membership in the database.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from workbench.core.config import Settings
from workbench.data.arrow import Spec
from workbench.data.backends.postgres import PostgresBackend
from workbench.data.errors import DataError, TeamChoiceError
from workbench.db.rls import IS_SERVICE_SQL, TEAM_COLUMN

__all__ = ["GovernedBackend"]

_PROTECTION = (
    "SELECT d.team_id::text AS team_id, d.shared AS shared, "
    "c.relforcerowsecurity AND d.id IS NOT NULL AS protected "
    "FROM pg_class c LEFT JOIN datasets d ON d.name = c.relname "
    "WHERE c.oid = to_regclass($1)"
)
_TEXT_ARRAY = "ARRAY(SELECT jsonb_array_elements_text(CAST(${} AS jsonb)))"


@dataclass(frozen=True)
class _Protection:
    team_id: str | None
    shared: bool


class GovernedBackend(PostgresBackend):
    """The PostgreSQL backend for writes: new tables belong to a team under forced RLS."""

    hidden_columns: ClassVar[frozenset[str]] = frozenset({TEAM_COLUMN})

    def __init__(self, connection: Any) -> None:
        super().__init__(connection)
        self.team: str | None = None
        self.shared = False
        self._service: bool | None = None
        self._temporary: set[str] = set()

    @classmethod
    def open(cls, url: str, settings: Settings) -> GovernedBackend:
        backend = super().open(url, settings)
        assert isinstance(backend, GovernedBackend)  # noqa: S101 (open builds a cls)
        return backend

    def govern(self, team: str | None, shared: bool) -> None:
        self.team, self.shared = team, shared

    @property
    def is_service(self) -> bool:
        """True for the owner role (the service), False for a user's own login."""
        if self._service is None:
            self._service = bool(self.scalar(IS_SERVICE_SQL))
        return self._service

    # -- new tables -----------------------------------------------------------------------

    def new_table(
        self, table: str, schema: pa.Schema, specs: Mapping[str, Spec], key: Sequence[str] = ()
    ) -> None:
        if self.is_service:
            self.create_table(table, schema, specs, key)
            self._protect(table, self._service_team(table), self.shared)
            return
        names = [f.name for f in schema]
        types = [self.ddl_type(f.type, specs.get(f.name, {})) for f in schema]
        self.execute(
            "SELECT wb_private.create_team_table($1, "
            f"{_TEXT_ARRAY.format(2)}, {_TEXT_ARRAY.format(3)}, CAST($4 AS uuid))",
            [table, json.dumps(names), json.dumps(types), self._my_team(table)],
        )
        if key:
            self.unique_index(table, key)

    def _protect(self, table: str, team_id: str | None, shared: bool) -> None:
        """Protect ``table`` for ``team_id`` (``None``: a service table of no team).

        The owner recorded is the account whose login writes (none for the service role).
        """
        if team_id is None:
            self.execute(
                "SELECT wb_private.protect_service_table(CAST($1 AS regclass), "
                f"{self.owner()}, $2)",
                [self.q(table), shared],
            )
        else:
            # A constant default fills existing rows without rewriting them (after a swap the
            # table may be large); protect_table then finds no row without a team.
            literal = str(uuid.UUID(team_id))
            self.execute(
                f"ALTER TABLE {self.q(table)} ADD COLUMN IF NOT EXISTS {self.q(TEAM_COLUMN)} "
                f"uuid DEFAULT '{literal}'"
            )
            self.execute(
                "SELECT wb_private.protect_table(CAST($1 AS regclass), CAST($2 AS uuid), "
                f"{self.owner()}, $3)",
                [self.q(table), team_id, shared],
            )

    def _service_team(self, table: str) -> str | None:
        """The team of a table the service creates: ``team=``, else the only team, if any."""
        if self.team is not None:
            found = self.scalar("SELECT id::text FROM teams WHERE name = $1", [self.team])
            if found is None:
                raise TeamChoiceError(
                    f"Table {table!r}: there is no team {self.team!r}; see `workbench teams "
                    "list`. Nothing was changed."
                )
            return str(found)
        teams = self.fetch("SELECT id::text AS id FROM teams ORDER BY name LIMIT 2")
        ids = [] if teams is None else teams.column("id").to_pylist()
        if len(ids) == 1:
            return str(ids[0])
        if not ids or self.shared:
            return None  # a table of no team: admins write it; everyone reads it if shared
        raise TeamChoiceError(
            f"Table {table!r}: the database has several teams; say which one the table "
            "belongs to with team='name' (`--team` on the command line), or shared=True "
            "for reference data everyone reads. Nothing was changed."
        )

    def _my_team(self, table: str) -> str | None:
        """The id of the user's team named ``team=`` (checked by the database), or ``None``."""
        if self.team is None:
            return None
        found = self.scalar("SELECT wb_private.team_named($1)::text", [self.team])
        if found is None:
            raise TeamChoiceError(
                f"Table {table!r}: you are not a member of a team {self.team!r}; name one of "
                "your teams (an admin can add you with `workbench teams add-member`). "
                "Nothing was changed."
            )
        return str(found)

    # -- replace, upsert, keys ------------------------------------------------------------

    def check_existing(self, table: str) -> None:
        """A ``team=`` naming another team than the existing table's is refused, never
        ignored: a write keeps the table's team (docs/security.md). Checked before anything
        changes, in the write's transaction."""
        if self.team is None:
            return
        before = self._protection(table)
        if before is None:
            return  # the service protects it for team= now; a user's login sees no such row
        wanted = self._service_team(table) if self.is_service else self._my_team(table)
        if wanted == before.team_id:
            return
        if before.team_id is None:
            now = "belongs to no team"
        else:
            name = self.scalar("SELECT wb_private.team_name(CAST($1 AS uuid))", [before.team_id])
            now = f"belongs to team {name!r}" if name else "belongs to another team"
        raise TeamChoiceError(
            f"Table {table!r} {now}, not to team {self.team!r}: a write keeps the table's "
            f"team, so team={self.team!r} was refused and nothing was changed. Write without "
            f"team=, or, to give the rows to team {self.team!r}, write them to a new table with "
            f"team={self.team!r} (an admin can then drop this one)."
        )

    def can_swap(self, table: str) -> bool:
        return self.is_service

    def replace(
        self, table: str, data: pa.Table, specs: Mapping[str, Spec], key: Sequence[str]
    ) -> None:
        before = self._protection(table)
        super().replace(table, data, specs, key)
        if before is None:
            self._protect(table, self._service_team(table), self.shared)
        else:
            self._protect(table, before.team_id, before.shared or self.shared)

    def _protection(self, table: str) -> _Protection | None:
        """The team and sharing of a protected table; ``None`` if it is not protected."""
        found = self.fetch(_PROTECTION, [self.q(table)])
        rows = [] if found is None else found.to_pylist()
        if not rows or not rows[0]["protected"]:
            return None
        return _Protection(team_id=rows[0]["team_id"], shared=bool(rows[0]["shared"]))

    def staging_table(self, schema: pa.Schema, specs: Mapping[str, Spec]) -> str:
        if self.is_service:
            return super().staging_table(schema, specs)
        # A user's login may not create tables in the schema, but may create temporary ones.
        return self._temporary_table(schema, specs)

    def _temporary_table(self, schema: pa.Schema, specs: Mapping[str, Spec]) -> str:
        staging = f"wb_stage_{uuid.uuid4().hex[:16]}"
        columns = ", ".join(self.column_definitions(schema, specs))
        self.execute(f"CREATE TEMPORARY TABLE {self.q(staging)} ({columns}) ON COMMIT DROP")
        self._temporary.add(staging)
        return staging

    def ingest(self, table: str, data: pa.Table) -> None:
        """Bulk COPY; into a table under row-level security (where PostgreSQL refuses COPY)
        by COPY into a temporary table and one ``INSERT ... SELECT``, so the policies check
        every row."""
        if table in self._temporary:
            self.cursor.adbc_ingest(table, data, mode="append", temporary=True)
            return
        if not self.scalar("SELECT row_security_active(CAST($1 AS regclass))", [self.q(table)]):
            super().ingest(table, data)
            return
        staging = self._temporary_table(data.schema, {})
        self.cursor.adbc_ingest(staging, data, mode="append", temporary=True)
        names = ", ".join(self.q(c) for c in data.column_names)
        target, source = self.q(table), self.q(staging)
        self.execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM {source}")  # noqa: S608
        self.execute(f"DROP TABLE {source}")

    def unique_index(self, table: str, key: Sequence[str]) -> None:
        if self.is_service or table in self._temporary:
            super().unique_index(table, key)
            return
        self.execute(
            f"SELECT wb_private.add_unique_key($1, $2, {_TEXT_ARRAY.format(3)})",
            [table, self.index_name(table, key), json.dumps(list(key))],
        )

    # -- the catalog ----------------------------------------------------------------------

    def record_dataset(self, table: str, mode: str, rows: int, specs: Mapping[str, Spec]) -> None:
        if self.is_service:
            super().record_dataset(table, mode, rows, specs)
            return
        # The row exists (create_team_table made it); the policies let members update it.
        self.execute(
            "UPDATE datasets SET last_write_at = now(), last_write_mode = $2, "
            "last_write_rows = $3, columns = CAST($4 AS jsonb) WHERE name = $1",
            [table, mode, rows, self.specs_document(specs)],
        )

    def finish_write(self, table: str) -> None:
        if not self.shared:
            return
        if self.is_service:
            self.execute("UPDATE datasets SET shared = true WHERE name = $1", [table])
        else:
            self.execute("SELECT wb_private.share_table($1, NULL)", [table])

    def explain(self, error: Exception, table: str, operation: str = "write") -> DataError:
        explained = super().explain(error, table, operation)
        message = str(explained)
        if "belongs to no team" in message:
            return DataError(
                f"Table {table!r} belongs to no team, so only admins and the service may share "
                "it, add a key to it or give it to a team; ask an admin. Nothing was changed."
            )
        if "name the team" in message:
            return TeamChoiceError(f"{message} Pass team='name' (`--team` on the command line).")
        if "must be owner" in message:
            return DataError(
                f"{message} Only the service may change a team table's columns or indexes; "
                "ask an admin (or write to a new table)."
            )
        if "row-level security" in message or "permission denied" in message:
            return DataError(
                f"{message} In team mode only analysts and admins write, and only the tables "
                "of their teams; a table shared with you is read-only."
            )
        return explained
