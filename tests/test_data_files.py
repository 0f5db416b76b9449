"""core.infra.data_files: which lost key file refuses a start, decided from the database's
contents and the configuration, before anything is generated."""

from __future__ import annotations

import sqlite3

import pytest

from core.config import ConfigError, load_config
from core.infra.data_files import refuse_lost_key_files

SECRET = "a-configured-secret-that-is-long-enough-for-hs256"


def config(tmp_path, **overrides):
    settings = {"server.data_dir": str(tmp_path), "storage.url": f"sqlite:///{tmp_path}/vhod.db"}
    return load_config(None, environ={}, overrides={**settings, **overrides})


def database(tmp_path, *, users: bool, signing_keys: bool) -> None:
    with sqlite3.connect(tmp_path / "vhod.db") as db:
        db.execute("CREATE TABLE users (id TEXT)")
        db.execute("CREATE TABLE signing_keys (kid TEXT)")
        if users:
            db.execute("INSERT INTO users VALUES ('u1')")
        if signing_keys:
            db.execute("INSERT INTO signing_keys VALUES ('k1')")


def check(cfg, *, kek: bool = True, pseudonym: bool = True) -> None:
    refuse_lost_key_files(cfg, kek_needed=kek, pseudonym_needed=pseudonym)


def test_a_new_install_generates_its_files(tmp_path):
    check(config(tmp_path))
    (tmp_path / "vhod.db").touch()  # made empty by a start that failed before its tables
    check(config(tmp_path))


def test_stored_signing_keys_without_their_key_encryption_key_refuse(tmp_path):
    database(tmp_path, users=False, signing_keys=True)
    with pytest.raises(ConfigError) as refused:
        check(config(tmp_path))
    assert f"{tmp_path}/jwt_key_encryption_key is missing" in str(refused.value)
    assert "jwt.key_encryption_key" in str(refused.value)
    assert "pseudonym" not in str(refused.value)  # no users: nothing hashed with it yet
    assert list(tmp_path.iterdir()) == [tmp_path / "vhod.db"]


def test_a_configured_key_or_hmac_signing_needs_no_key_encryption_key_file(tmp_path):
    database(tmp_path, users=False, signing_keys=True)
    check(config(tmp_path, **{"jwt.key_encryption_key": "k" * 40}))
    check(config(tmp_path), kek=False)  # HS256: the stored keys only verify


def test_users_without_their_pseudonym_key_refuse_unless_one_is_configured(tmp_path):
    database(tmp_path, users=True, signing_keys=False)
    with pytest.raises(ConfigError, match=r"pseudonym_key is missing.*logging\.pseudonym_key"):
        check(config(tmp_path))
    check(config(tmp_path, **{"logging.pseudonym_key": "p" * 40}))
    check(config(tmp_path, **{"jwt.secret": SECRET}))  # derived from the secret
    check(config(tmp_path), pseudonym=False)  # the keys commands do not use it


def test_both_lost_files_are_named_in_one_line(tmp_path):
    database(tmp_path, users=True, signing_keys=True)
    with pytest.raises(ConfigError) as refused:
        check(config(tmp_path))
    message = str(refused.value)
    assert "\n" not in message
    assert "jwt_key_encryption_key and" in message and "pseudonym_key is missing" in message


def test_a_file_that_is_no_database_is_named(tmp_path):
    (tmp_path / "vhod.db").write_bytes(b"x" * 4096)
    with pytest.raises(ConfigError, match=r"storage\.url: .*not a usable SQLite database"):
        check(config(tmp_path))


def test_mongodb_and_memory_stores_keep_no_database_in_a_folder(tmp_path):
    check(config(tmp_path, **{"storage.url": "mongodb://127.0.0.1:1/vhod"}))
    check(config(tmp_path, **{"storage.url": "sqlite:///:memory:"}))
