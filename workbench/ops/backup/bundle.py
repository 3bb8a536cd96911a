"""The backup bundle: one folder holding a manifest, the database, run outputs and maybe the key.

A bundle is a directory named ``workbench-<UTC time>`` in a backup folder (a local directory
or an fsspec URL such as ``s3://bucket/backups``)::

    manifest.json      format and Workbench versions, migration revision, database kind,
                       rows and checksum per table, sha256 and size per file, the roles
    database.dump      PostgreSQL: pg_dump -Fc       (or database.sqlite: an SQLite copy)
    files/runs/...     the run outputs of the home's runs folder
    secret_key         only with --include-key, mode 0600
    verified.json      written by `workbench backup verify`: the outcome and when

The manifest is written last, so a folder without one is an unfinished backup and is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from workbench.ops.errors import BackupError, BackupNotFoundError, BackupVerificationError

__all__ = [
    "DATABASE_FILES",
    "FORMAT",
    "FORMAT_VERSION",
    "KEY_FILE",
    "MANIFEST",
    "NAME_PREFIX",
    "VERIFIED",
    "BackupStore",
    "FileEntry",
    "Manifest",
    "RoleDefinition",
    "TableStats",
    "Verification",
    "bundle_name",
    "hash_file",
    "resolve_bundle",
    "safe_relative",
]

FORMAT = "workbench-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VERIFIED = "verified.json"
KEY_FILE = "secret_key"
NAME_PREFIX = "workbench-"
DATABASE_FILES = {"postgresql": "database.dump", "sqlite": "database.sqlite"}
#: Files of a bundle that the manifest does not list: itself, the verification and the key.
UNLISTED = frozenset({MANIFEST, VERIFIED, KEY_FILE})
_CHUNK = 1 << 20


@dataclass(frozen=True)
class TableStats:
    """A table's row count and an order-independent checksum of its rows."""

    rows: int
    checksum: str


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class RoleDefinition:
    """A cluster-wide role Workbench made: never a password, only its name and groups."""

    name: str
    login: bool
    member_of: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    """What a bundle holds and how to check it; contains no password and no key."""

    created_at: datetime
    workbench_version: str
    database_kind: str
    revision: str
    tables: dict[str, TableStats]
    files: dict[str, FileEntry]
    roles: tuple[RoleDefinition, ...] = ()
    owner_role: str | None = None
    key_included: bool = False
    key_check: str | None = None
    source: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def database_file(self) -> str:
        return DATABASE_FILES[self.database_kind]

    def to_json(self) -> str:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return json.dumps({"format": FORMAT, **data}, indent=2, sort_keys=True) + "\n"

    def require_this_version(self, where: str) -> None:
        """Refuse a backup another Workbench version made: its schema may differ from ours."""
        from workbench.core.version import __version__

        if self.workbench_version != __version__:
            raise BackupVerificationError(
                f"{where} was made by Workbench {self.workbench_version}, this is {__version__}: "
                f"verify and restore it with Workbench {self.workbench_version}, then upgrade "
                "(`workbench db upgrade`)."
            )

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        """Parse a manifest, refusing one of another format."""
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT:
                raise BackupVerificationError(f"{where} is not a Workbench backup manifest.")
            version = data.get("format_version")
            if version != FORMAT_VERSION:
                raise BackupVerificationError(
                    f"{where} has backup format {version!r}; this Workbench reads format "
                    f"{FORMAT_VERSION} only. Use the Workbench version that made it."
                )
            manifest = cls(
                created_at=datetime.fromisoformat(data["created_at"]),
                workbench_version=str(data["workbench_version"]),
                database_kind=str(data["database_kind"]),
                revision=str(data["revision"]),
                tables={
                    k: TableStats(int(v["rows"]), str(v["checksum"]))
                    for k, v in data["tables"].items()
                },
                files={
                    k: FileEntry(str(v["sha256"]), int(v["bytes"]))
                    for k, v in data["files"].items()
                },
                roles=tuple(
                    RoleDefinition(str(r["name"]), bool(r["login"]), tuple(r["member_of"]))
                    for r in data.get("roles", [])
                ),
                owner_role=data.get("owner_role"),
                key_included=bool(data.get("key_included", False)),
                key_check=data.get("key_check"),
                source={str(k): str(v) for k, v in data.get("source", {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupVerificationError(f"{where} cannot be read ({exc!r}).") from None
        if manifest.database_kind not in DATABASE_FILES:
            raise BackupVerificationError(f"{where} names an unknown database kind.")
        for name in manifest.files:
            safe_relative(name)
        return manifest


@dataclass(frozen=True)
class Verification:
    """The outcome of `workbench backup verify`, kept beside the manifest as verified.json."""

    ok: bool
    verified_at: datetime
    workbench_version: str
    checks: tuple[str, ...]
    error: str | None = None

    def to_json(self) -> str:
        data = asdict(self)
        data["verified_at"] = self.verified_at.isoformat()
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Verification | None:
        try:
            data = json.loads(text)
            return cls(
                ok=data["ok"] is True,
                verified_at=datetime.fromisoformat(data["verified_at"]),
                workbench_version=str(data["workbench_version"]),
                checks=tuple(str(c) for c in data.get("checks", [])),
                error=data.get("error"),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def bundle_name(at: datetime) -> str:
    """``workbench-20260102T020000Z``: sortable by time, one per second."""
    return NAME_PREFIX + at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def safe_relative(name: str) -> PurePosixPath:
    """A bundle member's path, refusing absolute paths and ``..`` (a manifest is input)."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or "\\" in name:
        raise BackupVerificationError(f"The manifest names an unsafe path {name!r}.")
    return path


def hash_file(path: Path) -> FileEntry:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileEntry(digest.hexdigest(), size)


def _is_url(location: str) -> bool:
    return "://" in location


class BackupStore:
    """A folder of bundles: a local directory, or any fsspec URL (``s3://bucket/backups``)."""

    def __init__(self, location: str | Path) -> None:
        text = str(location)
        self.is_local = not _is_url(text) or text.startswith("file://")
        if self.is_local:
            self.root = Path(text.removeprefix("file://")).expanduser().resolve()
            self.location = str(self.root)
        else:
            import fsspec

            self.fs, self._root = fsspec.core.url_to_fs(text.rstrip("/"))
            self.location = text.rstrip("/")

    def __repr__(self) -> str:
        return f"<BackupStore {self.location}>"

    def where(self, name: str) -> str:
        """The bundle's path or URL, for messages."""
        return f"{self.location}/{name}"

    def names(self) -> list[str]:
        """The finished bundles (those with a manifest), oldest first."""
        if self.is_local:
            if not self.root.is_dir():
                return []
            found = [p.name for p in self.root.iterdir() if (p / MANIFEST).is_file()]
        else:
            try:
                entries = self.fs.ls(self._root, detail=False)
            except FileNotFoundError:
                return []
            found = [
                PurePosixPath(str(e)).name
                for e in entries
                if self.fs.exists(f"{str(e).rstrip('/')}/{MANIFEST}")
            ]
        return sorted(n for n in found if n.startswith(NAME_PREFIX))

    def exists(self, name: str) -> bool:
        """Whether anything (a bundle, finished or not) is called ``name`` here."""
        if self.is_local:
            return (self.root / name).exists()
        return bool(self.fs.exists(f"{self._root}/{name}"))

    def free_name(self, base: str) -> str:
        """``base``, or ``base-2``, ``base-3``, ... when backups are made within one second."""
        name, number = base, 1
        while self.exists(name):
            number += 1
            name = f"{base}-{number}"
        return name

    def read_text(self, name: str, member: str) -> str | None:
        try:
            if self.is_local:
                return (self.root / name / member).read_text(encoding="utf-8")
            data: bytes = self.fs.cat_file(f"{self._root}/{name}/{member}")
            return data.decode("utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return None

    def manifest(self, name: str, *, this_version: bool = False) -> Manifest:
        text = self.read_text(name, MANIFEST)
        if text is None:
            raise BackupNotFoundError(
                f"{self.where(name)} has no {MANIFEST}: it is not a Workbench backup, or it was "
                "not finished. `workbench backup list` shows the backups."
            )
        where = f"The manifest of {self.where(name)}"
        manifest = Manifest.from_json(text, where)
        if this_version:
            manifest.require_this_version(where)
        return manifest

    def verification(self, name: str) -> Verification | None:
        text = self.read_text(name, VERIFIED)
        return None if text is None else Verification.from_json(text)

    def write_verification(self, name: str, result: Verification) -> None:
        self._write(name, VERIFIED, result.to_json())

    def _write(self, name: str, member: str, text: str) -> None:
        if self.is_local:
            target = self.root / name / member
            tmp = target.with_name(f".{member}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.chmod(0o600)
            tmp.replace(target)
        else:
            self.fs.pipe_file(f"{self._root}/{name}/{member}", text.encode("utf-8"))

    @contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        """A private folder to build bundle ``name`` in; published only if the block succeeds."""
        if self.is_local:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            if (self.root / name).exists():
                raise BackupError(f"{self.where(name)} exists already; try again in a second.")
            work = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=self.root))
        else:
            work = Path(tempfile.mkdtemp(prefix=f"{name}.", suffix=".partial"))
        work.chmod(0o700)
        try:
            yield work
            self._publish(work, name)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _publish(self, work: Path, name: str) -> None:
        if self.is_local:
            try:
                os.rename(work, self.root / name)
            except OSError as exc:
                raise BackupError(f"Cannot publish {self.where(name)}: {exc.strerror}.") from None
            return
        remote = f"{self._root}/{name}"
        files = sorted(p for p in work.rglob("*") if p.is_file() and p.name != MANIFEST)
        for path in [*files, work / MANIFEST]:  # the manifest last: it marks the bundle done
            target = f"{remote}/{path.relative_to(work).as_posix()}"
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(path), target)

    @contextmanager
    def local_copy(self, name: str) -> Iterator[Path]:
        """The bundle as a local folder: itself when local, else a private download."""
        if self.is_local:
            path = self.root / name
            if not path.is_dir():
                raise BackupNotFoundError(f"There is no backup at {self.where(name)}.")
            yield path
            return
        work = Path(tempfile.mkdtemp(prefix=f"{name}.", suffix=".download"))
        work.chmod(0o700)
        try:
            remote = f"{self._root}/{name}"
            if not self.fs.exists(remote):
                raise BackupNotFoundError(f"There is no backup at {self.where(name)}.")
            for member in self.fs.find(remote):
                rel = safe_relative(str(member)[len(remote) :].lstrip("/"))
                target = work.joinpath(*rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                self.fs.get_file(member, str(target))
            yield work
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def delete(self, name: str) -> None:
        if self.is_local:
            shutil.rmtree(self.root / name)
        else:
            self.fs.rm(f"{self._root}/{name}", recursive=True)

    def size(self, name: str) -> int:
        """Bytes of the bundle's listed files (from its manifest)."""
        return sum(entry.bytes for entry in self.manifest(name).files.values())


def resolve_bundle(reference: str | Path, default: BackupStore) -> tuple[BackupStore, str]:
    """The store and bundle name for a path, a URL, or a bare name in the default folder."""
    text = str(reference).rstrip("/")
    if _is_url(text) and not text.startswith("file://"):
        parent, _, name = text.rpartition("/")
        return BackupStore(parent), name
    path = Path(text.removeprefix("file://")).expanduser()
    if len(path.parts) == 1 and not path.exists():
        return default, text
    if not path.is_dir():
        raise BackupNotFoundError(
            f"There is no backup at {path}; `workbench backup list` shows the backups."
        )
    path = path.resolve()
    return BackupStore(path.parent), path.name
