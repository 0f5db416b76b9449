"""`python server.py admin|users|events …` as an operator runs them, on SQLite and MongoDB:
each action is read back from /admin/events of a running instance."""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pyotp
import yaml

from tests.conftest import TEST_SECRET, USER
from tests.processes import ROOT, Server, clean_env, free_port, status_of
from tests.storage_fixtures import running_app
from tests.test_admin_stores import ADMIN, KEY, KEY_HASH, call

AUTH = {"Authorization": f"Bearer {KEY}"}


def cli(tmp_path: Path, storage_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "cli.yaml"
    settings = {
        "jwt": {"secret": TEST_SECRET},
        "passwords": {"algorithm": "bcrypt", "bcrypt_rounds": 4},
        "server": {"data_dir": str(tmp_path / "cli-data")},
        "storage": {"url": storage_url},
        "limits": {"hash_workers": 1},
    }
    config.write_text(yaml.safe_dump(settings))
    return subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        cwd=tmp_path,
        check=False,
    )


def test_new_key_prints_a_key_and_the_line_that_accepts_it(tmp_path):
    done = cli(tmp_path, f"sqlite:///{tmp_path}/vhod.db", "admin", "new-key", "ops")
    assert done.returncode == 0, done.stderr
    key = done.stdout.splitlines()[0]
    digest = hashlib.sha256(key.encode()).hexdigest()
    config_text = "\n".join(done.stdout.splitlines()[1:])
    assert yaml.safe_load(config_text)["admin"]["keys"]["ops"] == digest
    refused = cli(tmp_path, f"sqlite:///{tmp_path}/vhod.db", "admin", "new-key", "Bad Name")
    assert refused.returncode == 2


async def test_find_disable_revoke_and_tail_from_the_command_line(tmp_path, backend_url):
    async with running_app(tmp_path / "app", backend_url, **ADMIN) as app:
        status, _ = await call(app, "POST", "/authorization/registration", USER, key=None)
        assert status == 200

        found = cli(tmp_path, backend_url, "users", "find", "ANN@example.com")
        assert found.returncode == 0, found.stderr
        [user] = [json.loads(line) for line in found.stdout.splitlines()]
        assert user["email"] == USER["email"]

        disabled = cli(tmp_path, backend_url, "users", "disable", user["id"])
        assert disabled.returncode == 0, disabled.stderr
        assert json.loads(disabled.stdout)["disabled"] is True
        login = await call(app, "POST", "/authorization/login/email", USER, key=None)
        assert login[0] == 403

        revoked = cli(tmp_path, backend_url, "users", "revoke", user["id"])
        assert revoked.returncode == 0, revoked.stderr
        missing = cli(tmp_path, backend_url, "users", "revoke", "nobody")
        assert missing.returncode == 1 and "no user" in missing.stderr

        await app.services.audit.flush()  # the CLI blocks this loop: the app's writer waits
        tail = cli(tmp_path, backend_url, "events", "tail", "-n", "3", "--user", user["id"])
        assert tail.returncode == 0, tail.stderr
        tailed = [json.loads(line)["type"] for line in tail.stdout.splitlines()]
        assert tailed == ["admin_user_disabled", "disabled_sign_in", "admin_sessions_revoked"]

        status, page = await call(app, "GET", f"/admin/events?user={user['id']}")
        assert status == 200
        by_cli = [e for e in page["events"] if e["type"].startswith("admin_")]
        assert [e["type"] for e in by_cli] == ["admin_sessions_revoked", "admin_user_disabled"]
        assert {e["details"]["admin"] for e in by_cli} == {f"cli:{getpass.getuser()}"}
        assert {e["ip"] for e in by_cli} == {"local"}

        deleted = cli(tmp_path, backend_url, "users", "delete", user["id"])
        assert deleted.returncode == 0, deleted.stderr
        assert json.loads(deleted.stdout) == {"deleted": True}
        gone = cli(tmp_path, backend_url, "users", "find", USER["email"])
        assert gone.returncode == 0 and gone.stdout == ""
        status, page = await call(app, "GET", "/admin/events?type=admin_user_deleted")
        assert status == 200 and len(page["events"]) == 1
        status, _ = await call(app, "POST", "/authorization/registration", USER, key=None)
        assert status == 200  # the email is free again


async def test_reset_mfa_from_the_command_line(tmp_path, backend_url):
    async with running_app(tmp_path / "app", backend_url, **ADMIN) as app:
        status, pair = await call(app, "POST", "/authorization/registration", USER, key=None)
        assert status == 200
        status, setup = await call(app, "POST", "/authorization/mfa/totp/setup", key=pair["access"])
        assert status == 200, setup
        code = {"code": pyotp.TOTP(setup["secret"]).now()}
        status, _ = await call(
            app, "POST", "/authorization/mfa/totp/confirm", code, key=pair["access"]
        )
        assert status == 200
        status, body = await call(app, "POST", "/authorization/login/email", USER, key=None)
        assert body["mfa_required"] is True

        user_id = json.loads(cli(tmp_path, backend_url, "users", "find", USER["email"]).stdout)[
            "id"
        ]
        reset = cli(tmp_path, backend_url, "users", "reset-mfa", user_id)
        assert reset.returncode == 0, reset.stderr
        assert json.loads(reset.stdout) == {
            "reset": True,
            "removed": {"passkeys": 0, "recovery_codes": 10, "totp": True},
        }
        status, body = await call(app, "POST", "/authorization/login/email", USER, key=None)
        assert status == 200 and "access" in body, body
        await app.services.audit.flush()
        status, page = await call(app, "GET", "/admin/events?type=admin_mfa_reset")
        assert [e["details"]["admin"] for e in page["events"]] == [f"cli:{getpass.getuser()}"]


def test_the_admin_routes_can_listen_apart_from_the_main_server(tmp_path):
    admin_port = free_port()
    server = Server(
        tmp_path,
        VHOD_ADMIN__KEYS__OPS=KEY_HASH,
        VHOD_ADMIN__PORT=str(admin_port),
        VHOD_PASSWORDS__BCRYPT_ROUNDS="4",
    )
    try:
        log = server.wait_started()
        assert f"admin API listening on http://127.0.0.1:{admin_port}" in log
        admin_url = f"http://127.0.0.1:{admin_port}"
        assert status_of(server.url("/admin/users")) == 404
        assert status_of(f"{admin_url}/authorization/registration") == 404
        assert status_of(f"{admin_url}/admin/users") == 401
        request = urllib.request.Request(f"{admin_url}/admin/users", headers=AUTH)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            assert json.loads(response.read()) == {"users": [], "next_cursor": None}
    finally:
        assert server.stop() == 0


async def test_events_tail_follow_prints_new_events_as_they_come(tmp_path):
    storage_url = f"sqlite:///{tmp_path}/vhod.db"
    async with running_app(tmp_path / "app", storage_url, **ADMIN) as app:
        done = cli(tmp_path, storage_url, "events", "tail")  # writes cli.yaml; no events yet
        assert done.returncode == 0 and done.stdout == ""
        command = [sys.executable, str(ROOT / "server.py"), "--config", str(tmp_path / "cli.yaml")]
        follower = await asyncio.create_subprocess_exec(
            *command,
            "events",
            "tail",
            "-f",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=clean_env(),
            cwd=tmp_path,
        )
        try:
            status, _ = await call(app, "POST", "/authorization/registration", USER, key=None)
            assert status == 200
            await app.services.audit.flush()
            assert follower.stdout is not None
            line = await asyncio.wait_for(follower.stdout.readline(), 30)
            assert json.loads(line)["type"] == "registered"
        finally:
            follower.terminate()
            await follower.wait()
