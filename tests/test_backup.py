"""`vhod backup` / `vhod restore`: a backup taken while the server runs and writes, restored
into a new folder, is the same store with the same key files, and a server started on it
accepts every token issued before the backup. A start never writes a new key file into a
folder whose database needs the old one."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest

from core.cli.backup import BackupError, backup, restore
from tests.conftest import make_config
from tests.processes import ROOT, Server, clean_env, request

PASSWORD = "correct horse"
TABLES = ("users", "identities", "refresh_tokens", "signing_keys", "audit_events")


def run_command(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "server.py"), *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def sqlite_env(folder: Path) -> dict[str, str]:
    """A new install's settings (ES256 keys sealed with a generated key-encryption key)."""
    return {
        "VHOD_SERVER__DATA_DIR": str(folder),
        "VHOD_STORAGE__URL": f"sqlite:///{folder}/vhod.db",
        "VHOD_PASSWORDS__BCRYPT_ROUNDS": "4",
        "VHOD_LIMITS__PER_IP_PER_MINUTE": "1000",
    }


def rows(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        return {table: sorted(db.execute(f"SELECT * FROM {table}").fetchall()) for table in TABLES}


def files(folder: Path) -> dict[str, str]:
    """The key files in `folder`, by name, as digests."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in folder.iterdir()
        if not path.name.startswith("vhod.db")
    }


def sign_up(server: Server, number: int) -> dict[str, Any]:
    user = {
        "email": f"user{number}@example.com",
        "phone_number": f"+7916{number:07d}",
        "hash_password": PASSWORD,
    }
    status, tokens = request(server.url("/authorization/registration"), user)
    assert status == 200, tokens
    return {**user, **tokens}  # type: ignore[dict-item]


def test_a_backup_of_a_running_server_restores_users_sessions_keys_and_tokens(tmp_path):
    live = tmp_path / "live"
    env = sqlite_env(live)
    server = Server(tmp_path, **env)
    try:
        server.wait_ready()
        users = [sign_up(server, number) for number in range(3)]
        status, second = request(
            server.url("/authorization/login/email"),
            {"email": users[0]["email"], "hash_password": PASSWORD},
        )
        assert status == 200, second
        # A second key, published beside the first: every key must come back.
        rotated = run_command(tmp_path, env, "keys", "rotate")
        assert rotated.returncode == 0, rotated.stderr
        # Registrations keep landing while the backup runs: it copies one snapshot.
        stop = threading.Event()
        during: list[dict[str, Any]] = []

        def keep_signing_up() -> None:
            number = 100
            while not stop.is_set():
                during.append(sign_up(server, number))
                number += 1

        writer = threading.Thread(target=keep_signing_up)
        writer.start()
        try:
            archive = tmp_path / "vhod-backup.tar"
            # The same settings from a file, as an operator's --config gives them.
            settings = tmp_path / "vhod.yaml"
            settings.write_text(
                f"server: {{data_dir: '{live}'}}\nstorage: {{url: 'sqlite:///{live}/vhod.db'}}\n"
            )
            made = run_command(tmp_path, {}, "--config", str(settings), "backup", str(archive))
        finally:
            stop.set()
            writer.join()
        assert made.returncode == 0, made.stderr
        assert (archive.stat().st_mode & 0o777) == 0o600
        assert "jwt_key_encryption_key" in made.stdout and "pseudonym_key" in made.stdout
        assert during, "no registration landed while the backup ran"
    finally:
        assert server.stop() == 0, server.log()

    restored = tmp_path / "restored"
    done = run_command(tmp_path, {}, "restore", str(archive), str(restored))
    assert done.returncode == 0, done.stderr
    assert f"VHOD_STORAGE__URL=sqlite:///{restored}/vhod.db" in done.stdout
    assert sorted(p.name for p in restored.iterdir()) == [
        "jwt_key_encryption_key",
        "pseudonym_key",
        "vhod.db",
    ]
    assert files(restored) == files(live)
    assert (restored.stat().st_mode & 0o777) == 0o700
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in restored.iterdir())

    before, after = rows(live / "vhod.db"), rows(restored / "vhod.db")
    assert len(after["signing_keys"]) == 2
    assert after["signing_keys"] == before["signing_keys"]
    # The snapshot holds every user from before the backup started, each with all of its
    # sessions, and of the ones signed up meanwhile a prefix, each whole (user and token).
    emails = {row[1] for row in after["users"]}
    assert {user["email"] for user in users} <= emails
    assert emails <= {user["email"] for user in users + during}
    by_id = {row[0] for row in after["users"]}
    assert {row[1] for row in after["refresh_tokens"]} == by_id
    assert set(after["refresh_tokens"]) <= set(before["refresh_tokens"])
    assert set(after["users"]) <= set(before["users"])

    server = Server(tmp_path, **sqlite_env(restored))
    try:
        server.wait_ready()
        for tokens in [*users, second]:
            status, valid = request(
                server.url("/validate/jwt/access"), {"access": tokens["access"]}
            )
            assert (status, valid) == (200, True)
            status, refreshed = request(
                server.url("/validate/jwt/refresh"), {"refresh": tokens["refresh"]}
            )
            assert status == 200 and refreshed["access"], refreshed
        status, signed_in = request(
            server.url("/authorization/login/email"),
            {"email": users[1]["email"], "hash_password": PASSWORD},
        )
        assert status == 200, signed_in
        # The restored folder kept its key files: the start generated none.
        assert files(restored) == files(live)
    finally:
        assert server.stop() == 0, server.log()


def test_a_database_without_its_key_encryption_key_refuses_to_start_and_writes_none(tmp_path):
    data = tmp_path / "data"
    env = sqlite_env(data)
    server = Server(tmp_path, **env)
    server.wait_ready()
    assert server.stop() == 0, server.log()
    (data / "jwt_key_encryption_key").unlink()  # a restore that forgot the key files
    left = files(data)

    for args in ((), ("keys", "rotate"), ("users", "find", "ann@example.com")):
        done = run_command(tmp_path, env, *args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "jwt_key_encryption_key is missing" in lines[0] and "vhod restore" in lines[0]
        assert files(data) == left  # no key file written (SQLite's -wal and -shm aside)


def test_a_database_without_its_pseudonym_key_refuses_to_start(tmp_path):
    data = tmp_path / "data"
    env = sqlite_env(data)
    server = Server(tmp_path, **env)
    server.wait_ready()
    sign_up(server, 1)
    assert server.stop() == 0, server.log()
    (data / "pseudonym_key").unlink()
    done = run_command(tmp_path, env)
    assert done.returncode == 2
    assert "pseudonym_key is missing" in done.stderr and "logging.pseudonym_key" in done.stderr
    assert not (data / "pseudonym_key").exists()


# ---- refusals, in process ------------------------------------------------------------------


def test_mongodb_is_backed_up_with_mongodump_not_this_command(tmp_path):
    config = make_config(tmp_path, **{"storage.url": "mongodb://127.0.0.1:1/vhod"})
    with pytest.raises(BackupError, match="mongodump"):
        backup(config, tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists()


def test_restore_takes_only_a_new_or_empty_folder(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "vhod.db").write_bytes(b"the store being replaced")
    with pytest.raises(BackupError, match="not an empty folder"):
        restore(tmp_path / "whatever.tar", folder)
    assert (folder / "vhod.db").read_bytes() == b"the store being replaced"


def forged(tmp_path: Path, manifest: dict[str, Any], members: dict[str, bytes]) -> Path:
    path = tmp_path / "forged.tar"
    with tarfile.open(path, "w") as archive:
        for name, data in {"vhod-backup.json": json.dumps(manifest).encode(), **members}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("manifest", "members", "refusal"),
    [
        ({"format": 1, "key_files": ["../../etc/cron.d/x"], "configured": []}, {}, "unknown"),
        ({"format": 9, "key_files": [], "configured": []}, {}, "format 1"),
        ({"format": 1, "key_files": [], "configured": []}, {}, "vhod.db is missing"),
        (
            {"format": 1, "key_files": [], "configured": []},
            {"vhod.db": b"not a database at all"},
            "not a usable SQLite database",
        ),
    ],
)
def test_restore_refuses_what_is_not_a_whole_backup_and_keeps_nothing(
    tmp_path, manifest, members, refusal
):
    target = tmp_path / "restored"
    with pytest.raises(BackupError, match=refusal):
        restore(forged(tmp_path, manifest, members), target)
    assert not target.exists()
