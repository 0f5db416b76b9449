"""The single executable (deploy/build-executable): built once per run with the example
provider plugin bundled, then copied alone into empty folders and used as an operator would:
start on the built-in defaults, sign a user up and in over HTTP, serve /docs and the email
templates from inside itself, answer --check-config, `keys` and `admin`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.processes import Child, clean_env, free_port, request, setting_env
from tests.storage_fixtures import with_database

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = ROOT / "examples" / "provider-plugin"
USER = {"phone_number": "+79161234567", "email": "exe@example.com", "hash_password": "p" * 8}


@pytest.fixture(scope="module")
def executable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist/vhod built from this tree by the build script, with the example plugin (pip
    installed into a folder of its own, as an operator would) bundled by --plugin."""
    pytest.importorskip("PyInstaller", reason="pip install -r deploy/requirements-build.txt")
    plugin = tmp_path_factory.mktemp("kukushka-installed")
    source = tmp_path_factory.mktemp("kukushka-source") / "provider-plugin"
    shutil.copytree(PLUGIN_DIR, source)  # pip builds in the folder it is given
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(plugin)]
    done = subprocess.run([*pip, str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    build = tmp_path_factory.mktemp("build")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "deploy" / "build-executable"),
            *("--dist", str(build / "dist"), "--work", str(build / "work")),
            *("--plugin", "vhod-kukushka"),
        ],
        env={**os.environ, "PYTHONPATH": str(plugin)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return build / "dist" / "vhod"


def alone(executable: Path, folder: Path) -> Path:
    """The executable copied into an empty folder: nothing of the repository is near it."""
    folder.mkdir()
    return Path(shutil.copy2(executable, folder / "vhod"))


def run(vhod: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(vhod), *args],
        cwd=vhod.parent,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


class Executable(Child):
    """The executable serving from its folder, on the defaults, with its log in a file."""

    def __init__(self, vhod: Path, **env: str) -> None:
        self.port = free_port()
        super().__init__(
            [str(vhod), "--port", str(self.port)],
            vhod.parent / "server.log",
            cwd=vhod.parent,
            env=clean_env(VHOD_PASSWORDS__BCRYPT_ROUNDS="4", **env),
        )
        self.wait_until(lambda: "vhod listening on" in self.log(), 60, "the executable")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "")


def test_alone_in_a_folder_it_signs_a_user_up_and_in(executable: Path, tmp_path: Path) -> None:
    vhod = alone(executable, tmp_path / "empty")
    server = Executable(vhod)
    try:
        line = server.log()
        # The embedded defaults: SQLite in ./data, ES256; the built-in providers and the
        # bundled plugin are all discovered.
        assert "storage=sqlite:///data/vhod.db" in line and "tokens=ES256" in line
        for name in ("vk", "mailru", "yandex", "ok", "kukushka"):
            assert f"{name}(not configured)" in line
        status, pair = request(server.url("/authorization/registration"), USER)
        assert status == 200 and isinstance(pair, dict) and set(pair) == {"access", "refresh"}
        login = {"email": USER["email"], "hash_password": USER["hash_password"]}
        status, signed_in = request(server.url("/authorization/login/email"), login)
        assert status == 200 and isinstance(signed_in, dict)
        access = signed_in["access"]
        assert request(server.url(f"/validate/jwt/access?access={access}")) == (200, True)
        wrong = {**login, "hash_password": "x" * 8}
        assert request(server.url("/authorization/login/email"), wrong)[0] == 401
    finally:
        assert server.stop() == 0
    assert sorted(p.name for p in vhod.parent.iterdir()) == ["data", "server.log", "vhod"]
    assert (vhod.parent / "data" / "vhod.db").is_file()


def test_on_mongodb_it_signs_a_user_up_and_in(
    executable: Path, tmp_path: Path, mongo_url: str
) -> None:
    """The MongoDB driver (imported only for a mongodb:// URL) is inside it too."""
    url = with_database(mongo_url, f"vhod_exe_{uuid.uuid4().hex[:12]}")
    vhod = alone(executable, tmp_path / "empty")
    server = Executable(
        vhod,
        VHOD_STORAGE__URL=url,
        VHOD_JWT__KEY_ENCRYPTION_KEY="k" * 32,
        VHOD_SERVER__DATA_DIR="data",
    )
    try:
        assert "storage=mongodb://" in server.log()
        assert request(server.url("/authorization/registration"), USER)[0] == 200
        login = {"email": USER["email"], "hash_password": USER["hash_password"]}
        status, signed_in = request(server.url("/authorization/login/email"), login)
        assert status == 200 and isinstance(signed_in, dict)
        access = signed_in["access"]
        assert request(server.url(f"/validate/jwt/access?access={access}")) == (200, True)
    finally:
        assert server.stop() == 0
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=3000)
    try:
        database = client.get_database()
        assert database.users.count_documents({}) == 1
        client.drop_database(database.name)
    finally:
        client.close()


def test_the_docs_and_the_api_description_come_from_inside_it(
    executable: Path, tmp_path: Path
) -> None:
    server = Executable(alone(executable, tmp_path / "empty"))
    try:
        status, page, kind = get(server.url("/docs"))
        assert status == 200 and kind.startswith("text/html") and b"swagger-ui-bundle.js" in page
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
            status, body, _ = get(server.url(f"/docs/static/{asset}"))
            assert status == 200 and len(body) > 100, asset
        status, body, _ = get(server.url("/openapi.json"))
        document = json.loads(body)
        assert status == 200 and "/authorization/registration" in document["paths"]
        assert "/kukushka/link" in document["paths"]  # the plugin's routes, generated
    finally:
        assert server.stop() == 0


def test_the_email_templates_come_from_inside_it(executable: Path, tmp_path: Path) -> None:
    from tests.fakes.channels import SmtpInbox

    inbox = SmtpInbox().start()
    try:
        server = Executable(alone(executable, tmp_path / "empty"), **setting_env(inbox.config()))
        try:
            assert request(server.url("/authorization/registration"), USER)[0] == 200
            reset = {"email": USER["email"]}
            assert request(server.url("/authorization/password/reset"), reset) == (200, True)
            assert len(inbox.code_for(USER["email"], timeout=30)) >= 6
        finally:
            assert server.stop() == 0
    finally:
        inbox.stop()


def test_check_config_answers_on_the_embedded_defaults(executable: Path, tmp_path: Path) -> None:
    vhod = alone(executable, tmp_path / "empty")
    checked = run(vhod, "--check-config")
    assert checked.returncode == 0, checked.stderr
    assert "configuration OK" in checked.stderr
    assert "url: sqlite:///data/vhod.db" in checked.stdout
    refused = run(vhod, "--check-config", VHOD_PROVIDERS__NOBODY__CLIENT_ID="x")
    assert refused.returncode == 2
    assert "providers.nobody: unknown provider" in refused.stderr
    assert "kukushka" in refused.stderr  # the installed providers it names include the plugin


def test_keys_and_admin_commands_work_and_the_admin_key_is_accepted(
    executable: Path, tmp_path: Path
) -> None:
    vhod = alone(executable, tmp_path / "empty")
    rotated = run(vhod, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    listed = run(vhod, "keys", "list")
    assert listed.returncode == 0 and "ES256" in listed.stdout, listed.stderr
    made = run(vhod, "admin", "new-key", "ops")
    assert made.returncode == 0, made.stderr
    key = made.stdout.split()[0]
    digest = next(
        line.split("=", 1)[1]
        for line in made.stdout.splitlines()
        if "VHOD_ADMIN__KEYS__OPS=" in line
    )
    server = Executable(vhod, VHOD_ADMIN__KEYS__OPS=digest)
    try:
        assert request(server.url("/authorization/registration"), USER)[0] == 200
        auth = {"Authorization": f"Bearer {key}"}
        status, body, _ = get(server.url(f"/admin/users?query={USER['email']}"), auth)
        assert status == 200, body
        assert len(json.loads(body)["users"]) == 1
    finally:
        assert server.stop() == 0
    users = run(vhod, "users", "find", USER["email"])
    assert users.returncode == 0, users.stderr
