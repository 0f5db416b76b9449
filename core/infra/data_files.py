"""The files vhod generates beside its SQLite database, and the rule that keeps a start from
generating a new one where a database already depends on the old one.

A new key-encryption key beside a database whose private keys were sealed with the lost one
would not decrypt them; a new pseudonym key would silently change every pseudonym and void
every pending one-time code. Either is a restore gone wrong (the database came back without
its key files), so the start refuses with one line and writes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.config import Config, ConfigError
from core.domain.events import PSEUDONYM_KEY_FILE
from core.signing.kek import KEK_FILE
from core.signing.keys import ASYMMETRIC_ALGORITHMS
from core.signing.shared_keys import secrets_folder
from core.signing.tokens import SECRET_FILE, choose_algorithm
from storage import database_file
from storage.sqlite.files import DatabaseFileError, holdings


@dataclass(frozen=True)
class KeyFile:
    name: str
    path: Path
    setting: str  # the setting that, configured, takes the file's place


def sqlite_database(config: Config) -> Path | None:
    """The SQLite database file storage.url names; None for MongoDB or :memory:."""
    return database_file(config.storage.url)


def kek_folder(config: Config) -> Path:
    """Where a generated key-encryption key lives: beside the SQLite database, so processes
    sharing that file share its keys too; else in server.data_dir."""
    return Path(secrets_folder(config))


def key_files(config: Config) -> list[KeyFile]:
    """Every file vhod may generate, where this configuration keeps it."""
    data_dir = Path(config.server.data_dir)
    return [
        KeyFile(KEK_FILE, kek_folder(config) / KEK_FILE, "jwt.key_encryption_key"),
        # The pseudonym key too lives beside the database (core.signing.shared_keys).
        KeyFile(
            PSEUDONYM_KEY_FILE, kek_folder(config) / PSEUDONYM_KEY_FILE, "logging.pseudonym_key"
        ),
        KeyFile(SECRET_FILE, data_dir / SECRET_FILE, "jwt.secret"),
    ]


def configured_secrets(config: Config) -> list[str]:
    """The secrets this configuration holds itself, which no backup file contains."""
    given = {
        "jwt.secret": config.jwt.secret,
        "jwt.key_encryption_key": config.jwt.key_encryption_key,
        "logging.pseudonym_key": config.logging.pseudonym_key,
    }
    return [name for name, value in given.items() if value is not None]


def refuse_lost_key_files(config: Config, *, kek_needed: bool, pseudonym_needed: bool) -> None:
    """ConfigError when the SQLite database exists and depends on a generated key file
    that is gone and would be generated now (`kek_needed`: to sign with a stored key pair,
    `pseudonym_needed`: to serve): called before anything is generated, so that a failed
    start writes none."""
    database = sqlite_database(config)
    if database is None:
        return
    files = {file.name: file for file in key_files(config)}
    kek, pseudonym = files[KEK_FILE], files[PSEUDONYM_KEY_FILE]
    # Only a file that would be generated now matters; usually both exist and no read is made.
    kek_missing = kek_needed and config.jwt.key_encryption_key is None and not kek.path.exists()
    pseudonym_missing = (
        pseudonym_needed
        and not (config.logging.pseudonym_key or config.jwt.secret)
        and not pseudonym.path.exists()
    )
    if not (kek_missing or pseudonym_missing):
        return
    try:
        held = holdings(database)
    except DatabaseFileError as exc:
        raise ConfigError(f"storage.url: {exc}") from exc
    if held is None:
        return  # a new install: generating its files is what the first start does
    lost: list[KeyFile] = []
    if kek_missing and held.signing_keys:
        lost.append(kek)  # the stored private keys are sealed with it
    if pseudonym_missing and held.users:
        lost.append(pseudonym)  # the audit log's pseudonyms, the pending codes' hashes
    if lost:
        names = " and ".join(str(file.path) for file in lost)
        settings = " and ".join(file.setting for file in lost)
        raise ConfigError(
            f"{database} holds a database but {names} is missing: restore the key files "
            f"with the database (`vhod restore`) or configure {settings}; "
            "no key file was written"
        )


def refuse_lost_key_files_at_start(config: Config) -> None:
    """The check for a start: the pseudonym key is needed, the key-encryption key when the
    configuration signs with a stored key pair."""
    algorithm = choose_algorithm(config.jwt.algorithm, config.jwt.secret, config.server.data_dir)
    refuse_lost_key_files(
        config, kek_needed=algorithm in ASYMMETRIC_ALGORITHMS, pseudonym_needed=True
    )
