"""`vhod backup` and `vhod restore`: the SQLite store and the key files it needs, in one tar.

The archive holds `vhod-backup.json` (what is inside, which vhod and schema made it, which
secrets the configuration held instead of files), `vhod.db` (an online backup: consistent
while the server runs) and `keys/<name>` for each generated key file. It is as secret as
the data folder itself: the key-encryption key that opens the stored signing keys is in it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from core.config import Config
from core.infra.data_files import configured_secrets, key_files, sqlite_database
from core.infra.version import version
from storage.sqlite.files import DatabaseFileError, backup_database, check_database

MANIFEST = "vhod-backup.json"
DATABASE = "vhod.db"
KEYS = "keys/"
FORMAT = 1
KNOWN_KEY_FILES = frozenset(file.name for file in key_files(Config()))
MAX_MANIFEST_BYTES = 64 * 1024


class BackupError(Exception):
    """The backup or restore cannot be made; the message says why. Nothing was written."""


@dataclass(frozen=True)
class Made:
    """What a backup or restore wrote."""

    schema_version: int
    key_files: list[str]
    configured: list[str]  # secrets kept in the configuration, not in the archive


def backup(config: Config, target: Path) -> Made:
    """Write the archive to `target` (replaced whole, never half-written), owner-only."""
    database = sqlite_database(config)
    if database is None:
        raise BackupError(
            "storage.url is not a SQLite file: back MongoDB up with mongodump "
            "(docs/operating.md, Backup and restore)"
        )
    if not database.is_file():
        raise BackupError(f"{database}: there is no database to back up")
    target = target.absolute()
    with tempfile.TemporaryDirectory(prefix="vhod-backup-") as work:
        copy = Path(work) / DATABASE
        try:
            schema_version = backup_database(database, copy)
        except DatabaseFileError as exc:
            raise BackupError(str(exc)) from exc
        found = [file for file in key_files(config) if file.path.is_file()]
        made = Made(schema_version, [file.name for file in found], configured_secrets(config))
        manifest = {
            "format": FORMAT,
            "vhod": version(),
            "schema_version": schema_version,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "database": DATABASE,
            "key_files": made.key_files,
            "configured": made.configured,
        }
        partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise BackupError(f"{target}: cannot write there: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as out:
                with tarfile.open(fileobj=out, mode="w") as archive:
                    _add(archive, MANIFEST, json.dumps(manifest, indent=1).encode() + b"\n")
                    _add_file(archive, DATABASE, copy)
                    for file in found:
                        _add_file(archive, KEYS + file.name, file.path)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return made


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(time.time())
    archive.addfile(info, io.BytesIO(data))


def _add_file(archive: tarfile.TarFile, name: str, path: Path) -> None:
    """A file, streamed (a database may be larger than memory), owner-only in the archive."""
    with path.open("rb") as file:
        info = archive.gettarinfo(fileobj=file, arcname=name)
        info.mode = 0o600
        archive.addfile(info, file)


def restore(source: Path, folder: Path) -> Made:
    """Lay the archive out in `folder` (new or empty): the database and its key files side
    by side, owner-only, for server.data_dir = folder and storage.url = folder/vhod.db."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BackupError(f"{folder}: not an empty folder; restore into a new one")
    made_folder = not folder.exists()
    written: list[Path] = []
    try:
        with tarfile.open(source, mode="r:") as archive:
            key_names, configured = _manifest(archive, source)
            members = {DATABASE: _member(archive, DATABASE, source)}
            members |= {name: _member(archive, KEYS + name, source) for name in key_names}
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.chmod(0o700)
            for name, info in members.items():
                path = folder / name  # DATABASE or a known key file's name, nothing else
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                written.append(path)
                extracted = archive.extractfile(info)
                assert extracted is not None  # a regular file always has contents
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(extracted, out)
                    out.flush()
                    os.fsync(out.fileno())
        schema_version = check_database(folder / DATABASE)
    except (OSError, tarfile.TarError, DatabaseFileError, BackupError) as exc:
        for path in written:  # a failed restore leaves the folder as it found it
            path.unlink(missing_ok=True)
        if made_folder:
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, BackupError):
            raise
        raise BackupError(f"{source}: cannot restore it into {folder}: {exc}") from exc
    return Made(schema_version, key_names, configured)


def _manifest(archive: tarfile.TarFile, source: Path) -> tuple[list[str], list[str]]:
    """The key files the archive holds and the secrets its configuration held instead."""
    extracted = archive.extractfile(_member(archive, MANIFEST, source, MAX_MANIFEST_BYTES))
    assert extracted is not None
    try:
        manifest = json.loads(extracted.read())
    except ValueError as exc:
        raise BackupError(f"{source}: its {MANIFEST} is not JSON") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{source}: not a vhod backup of format {FORMAT}")
    key_names = manifest.get("key_files")
    configured = manifest.get("configured")
    # Names come from the archive: only the known ones, so none can point outside the folder.
    if not isinstance(key_names, list) or not set(key_names) <= KNOWN_KEY_FILES:
        raise BackupError(f"{source}: its {MANIFEST} lists unknown key files")
    if not isinstance(configured, list) or not all(isinstance(c, str) for c in configured):
        raise BackupError(f"{source}: its {MANIFEST} is malformed")
    return [str(name) for name in key_names], configured


def _member(
    archive: tarfile.TarFile, name: str, source: Path, limit: int | None = None
) -> tarfile.TarInfo:
    try:
        info = archive.getmember(name)
    except KeyError:
        raise BackupError(f"{source}: {name} is missing from the backup") from None
    if not info.isreg() or (limit is not None and info.size > limit):
        raise BackupError(f"{source}: {name} in the backup is not a plain file")
    return info
