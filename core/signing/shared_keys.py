"""The keys, besides the signing keys, that every instance on one store must agree on.

The pseudonym key makes the identifier pseudonyms, and through them the keys of the
per-address code-send counts and of the login throttle of unknown identifiers; the admin
cursor key signs page cursors; the code key keys the stored hashes of one-time codes. An
instance with a key of its own would keep counts of its own (a limit of 5 codes an hour
would let 5 per instance through) and refuse the others' cursors and codes.

So they come from what the instances share, the first that applies:
1. `logging.pseudonym_key`;
2. `jwt.secret` (HMAC with a fixed label: the secret cannot be recovered from it);
3. on SQLite, a key generated once into a file beside the database: every process that
   shares the database file shares the folder (with the default `storage.url` this is
   `data_dir/pseudonym_key`, where earlier versions kept it, so nothing changes there);
4. on MongoDB, `jwt.key_encryption_key` (HKDF with a label of its own), which every
   instance must have to decrypt the signing keys;
5. MongoDB with none of these signs with an HMAC secret generated into `data_dir`: one
   instance only (no other could check its tokens), so a file in `data_dir` serves.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.config import Config
from core.domain.events import PSEUDONYM_KEY_FILE, load_or_create_key_file
from storage import database_file, is_shared

_FROM_JWT_SECRET = b"vhod/identifier-pseudonym/v1"
_FROM_KEK = b"vhod identifier pseudonyms v1"
_CODE_KEY_LABEL = b"vhod/one-time-codes/v1"
_CURSOR_LABEL = b"vhod/admin-cursor/v1"


@dataclass(frozen=True)
class SharedKeys:
    pseudonyms: bytes
    codes: bytes
    cursors: bytes
    source: str  # where they come from, for the start log (never the key)
    note: str | None = None  # an upgrade notice for the operator, logged once at start


def secrets_folder(config: Config) -> str:
    """Where generated secrets live: beside the SQLite database (data_dir with the default
    storage.url), so processes sharing that file share them; else data_dir."""
    database = database_file(config.storage.url)
    return str(database.parent) if database is not None else config.server.data_dir


def pseudonym_key(config: Config) -> tuple[bytes, str]:
    """The pseudonym key, and the setting or file it comes from (see the module's text).

    OSError when a file cannot be kept; ValueError for a short one."""
    if config.logging.pseudonym_key is not None:
        return config.logging.pseudonym_key.encode(), "logging.pseudonym_key"
    if config.jwt.secret is not None:
        return hmac.new(
            config.jwt.secret.encode(), _FROM_JWT_SECRET, hashlib.sha256
        ).digest(), "jwt.secret"
    if not is_shared(config.storage.url):
        path = Path(secrets_folder(config)) / PSEUDONYM_KEY_FILE
        return load_or_create_key_file(path), str(path)
    if config.jwt.key_encryption_key is not None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_FROM_KEK).derive(
            config.jwt.key_encryption_key.encode()
        )
        return derived, "jwt.key_encryption_key"
    path = Path(config.server.data_dir) / PSEUDONYM_KEY_FILE
    return load_or_create_key_file(path), str(path)


def shared_keys(config: Config) -> SharedKeys:
    pseudonyms, source = pseudonym_key(config)
    # The codes' key keeps its earlier derivation, so codes in flight survive an upgrade.
    configured = config.logging.pseudonym_key or config.jwt.secret or config.jwt.key_encryption_key
    code_base = configured.encode() if configured else pseudonyms
    # Earlier versions kept the key in data_dir when neither setting was given.
    unused = Path(config.server.data_dir) / PSEUDONYM_KEY_FILE
    note = None
    if (
        source not in ("logging.pseudonym_key", "jwt.secret")
        and Path(source).resolve() != unused.resolve()
        and unused.exists()
    ):
        note = (
            f"{unused} is no longer used: identifier pseudonyms now come from {source}, "
            "which every instance on the store shares. Per-address code-send counts and "
            "the login throttle of unknown identifiers start afresh once, and pseudonyms in "
            "earlier audit events differ from new ones. To keep the old ones, set "
            "logging.pseudonym_key to that file's content (the same on every instance); "
            "else delete the file to silence this line"
        )
    return SharedKeys(
        pseudonyms=pseudonyms,
        codes=hmac.new(code_base, _CODE_KEY_LABEL, hashlib.sha256).digest(),
        cursors=hmac.new(pseudonyms, _CURSOR_LABEL, hashlib.sha256).digest(),
        source=source,
        note=note,
    )
