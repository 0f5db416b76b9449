"""What an integrator does with /openapi.json: lint it with Redocly, generate a Python client
(openapi-python-client) and TypeScript types with a fetch client (openapi-typescript and
openapi-fetch), and run the sign-in flows through each against a live vhod.

The npm tools are pinned in tests/clients/package-lock.json and installed by this module with
`npm ci` into tests/clients/node_modules (gitignored), once per lockfile. Without Node.js the
tests skip, except in CI, where they fail.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.processes import ROOT, Server, clean_env, npm_ci

pytestmark = pytest.mark.slow

TOOLS = ROOT / "tests" / "clients"
NODE_MODULES = TOOLS / "node_modules"
PASSWORD = "correct horse battery"
ADMIN_KEY = "clients-test-admin-key-0123456789"


@pytest.fixture(scope="session")
def npm_tools() -> Path:
    """tests/clients/node_modules/.bin, installed from the lockfile when it changed."""
    npm_ci(TOOLS, "clients-npm")
    return NODE_MODULES / ".bin"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """vhod with VK ID configured (its token and profile URLs lead nowhere: the flows never
    reach them) and limits raised for the flows of both clients."""
    folder = tmp_path_factory.mktemp("clients")
    config = folder / "clients.yaml"
    config.write_text(
        "passwords:\n  algorithm: bcrypt\n  bcrypt_rounds: 4\n"
        f"server:\n  data_dir: {folder / 'data'}\n"
        f"storage:\n  url: sqlite:///{folder / 'data' / 'vhod.db'}\n"
        "limits:\n  per_ip_per_minute: 1000\n"
        f"admin:\n  keys:\n    clients: {hashlib.sha256(ADMIN_KEY.encode()).hexdigest()}\n"
        "providers:\n  vk:\n    client_id: '52896748'\n"
        "    token_url: http://127.0.0.1:9/token\n    userinfo_url: http://127.0.0.1:9/info\n"
    )
    server = Server(folder, "--config", str(config))
    try:
        server.wait_started()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def served_document(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/openapi.json as the live server serves it, in a file for the tools."""
    path = tmp_path_factory.mktemp("document") / "openapi.json"
    path.write_bytes(httpx.get(server.url("/openapi.json"), timeout=30).content)
    return path


def run(command: list[str], cwd: Path, **env: str) -> str:
    """The command's stdout and stderr together; it must succeed."""
    done = subprocess.run(
        command, cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=300
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output


def test_redocly_lint_of_the_served_document_is_clean(npm_tools, served_document):
    # The JSON report has the totals; Redocly's banners (its Node.js notice) are not problems.
    output = run(
        [
            str(npm_tools / "redocly"),
            "lint",
            "--config",
            str(ROOT / "redocly.yaml"),
            "--format",
            "json",
            str(served_document),
        ],
        served_document.parent,
        REDOCLY_TELEMETRY="off",
    )
    report = json.loads(output[output.index("{") : output.rindex("}") + 1])
    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 0}, report["problems"]


# --- Python: openapi-python-client ------------------------------------------------------------


@pytest.fixture(scope="module")
def python_client(served_document: Path) -> Iterator[ModuleType]:
    out = served_document.parent / "python"
    out.mkdir()
    # Its formatting step runs ruff, from this virtualenv.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    # No settings: the document alone must do, the audit export included.
    output = run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(served_document),
            "--meta",
            "none",
            "--output-path",
            str(out / "vhod_client"),
        ],
        out,
        PATH=path,
    )
    # Every line it prints is progress: no warning, no dropped response, no missing tool.
    assert "warning" not in output.lower(), output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines == [f"Generating {out / 'vhod_client'}"], output
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("vhod_client")
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == "vhod_client" or m.startswith("vhod_client.")]:
            del sys.modules[name]


def test_the_generated_python_client_runs_the_flows_with_typed_errors(python_client, server):
    from vhod_client import models
    from vhod_client.api.account import list_sessions
    from vhod_client.api.password_sign_in import login_with_email, login_with_phone, register
    from vhod_client.api.tokens import (
        logout,
        refresh,
        refresh_with_body,
        validate_access,
        validate_access_with_body,
    )
    from vhod_client.api.vk_id import vk_get_token, vk_link

    sent: list[httpx.Request] = []
    client = python_client.Client(
        base_url=server.url(""),
        raise_on_unexpected_status=True,
        httpx_args={"event_hooks": {"request": [sent.append]}},
    )
    person = {"phone_number": "+79161112233", "email": "py@example.com"}
    registration = models.RegistrationParams(**person, hash_password=PASSWORD)

    registered = register.sync_detailed(client=client, body=registration).parsed
    assert isinstance(registered, models.TokenPair)
    again = register.sync_detailed(client=client, body=registration)
    assert again.status_code == 409
    assert isinstance(again.parsed, models.UserExists)
    assert again.parsed.error is models.UserExistsError.USER_EXISTS

    email_login = models.EmailLoginParams(email=person["email"], hash_password=PASSWORD)
    by_email = login_with_email.sync(client=client, body=email_login)
    assert isinstance(by_email, models.TokenPair)
    phone_login = models.PhoneLoginParams(phone_number="8 (916) 111-22-33", hash_password=PASSWORD)
    assert isinstance(login_with_phone.sync(client=client, body=phone_login), models.TokenPair)
    wrong = login_with_email.sync_detailed(
        client=client,
        body=models.EmailLoginParams(email=person["email"], hash_password="not the password"),
    )
    assert wrong.status_code == 401
    assert isinstance(wrong.parsed, models.InvalidCredentials)
    assert wrong.parsed.error is models.InvalidCredentialsError.INVALID_CREDENTIALS

    refreshed = refresh_with_body.sync(
        client=client, body=models.RefreshParams(refresh=registered.refresh)
    )
    assert isinstance(refreshed, models.Refreshed) and refreshed.email == person["email"]
    assert isinstance(refresh.sync(client=client, refresh=registered.refresh), models.Refreshed)
    access = models.AccessParams(access=refreshed.access)
    assert validate_access_with_body.sync(client=client, body=access) is True
    assert validate_access.sync(client=client, access="x.y.z") is False

    # The account routes declare bearerAuth: an AuthenticatedClient sends the header.
    signed_in = python_client.AuthenticatedClient(
        base_url=server.url(""),
        token=by_email.access,
        raise_on_unexpected_status=True,
        httpx_args={"event_hooks": {"request": [sent.append]}},
    )
    listed = list_sessions.sync(client=signed_in)
    assert isinstance(listed, models.SessionList) and len(listed.sessions) >= 1
    assert sent[-1].headers["Authorization"] == f"Bearer {by_email.access}"
    assert "access" not in sent[-1].url.params

    assert logout.sync(client=client, body=models.LogoutParams(refresh=registered.refresh))
    revoked = refresh_with_body.sync_detailed(
        client=client, body=models.RefreshParams(refresh=registered.refresh)
    )
    assert revoked.status_code == 401
    assert isinstance(revoked.parsed, models.InvalidToken)
    assert revoked.parsed.error is models.InvalidTokenError.INVALID_TOKEN
    everywhere = models.LogoutParams(refresh=by_email.refresh, all_=True)
    assert logout.sync(client=client, body=everywhere) is True

    link = vk_link.sync(client=client)
    assert isinstance(link, str)
    state = httpx.URL(link).params["state"]
    exchange = vk_get_token.sync_detailed(
        client=client, code="a-code", state=state + "-other", device_id="a-device"
    )
    assert exchange.status_code == 400
    assert isinstance(exchange.parsed, models.ExchangeRefused)
    assert exchange.parsed.error is models.ExchangeRefusedError.INVALID_STATE

    assert_json_bodies_and_no_secret_in_urls(sent)


def test_the_generated_python_client_exports_the_audit_log(python_client, server):
    from vhod_client.api.admin import admin_export_events

    admin = python_client.AuthenticatedClient(
        base_url=server.url(""), token=ADMIN_KEY, raise_on_unexpected_status=True
    )
    person = {"phone_number": "+79164445566", "email": "export@example.com"}
    httpx.post(
        server.url("/authorization/registration"),
        json={**person, "hash_password": PASSWORD},
        timeout=30,
    ).raise_for_status()
    exported = admin_export_events.sync(client=admin)
    assert isinstance(exported, str)
    events = [json.loads(line) for line in exported.splitlines()]
    assert "registered" in {event["type"] for event in events}


def assert_json_bodies_and_no_secret_in_urls(sent: list[Any]) -> None:
    """Every POST of a generated client sends JSON; no password leaves in a URL."""
    posts = [request for request in sent if request.method == "POST"]
    assert len(posts) >= 8
    for request in posts:
        assert request.headers["Content-Type"] == "application/json", request.url
        assert not request.url.query, request.url
    for request in sent:
        assert PASSWORD.split()[0] not in str(request.url), request.url


# --- TypeScript: openapi-typescript + openapi-fetch ----------------------------------------------


def test_the_generated_typescript_client_runs_the_flows_with_typed_errors(
    npm_tools, served_document, server
):
    work = served_document.parent / "typescript"
    work.mkdir()
    # tsc and node resolve openapi-fetch from the folder of the file that imports it.
    (work / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
    shutil.copy(TOOLS / "flows.mts", work / "flows.mts")
    (work / "target.mts").write_text(
        f"export const baseUrl = {json.dumps(server.url(''))};\n"
        'export const email = "ts@example.com";\n'
        'export const phone = "+79162223344";\n'
    )
    output = run(
        [str(npm_tools / "openapi-typescript"), str(served_document), "-o", "schema.d.ts"],
        work,
    )
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 2 and "openapi-typescript" in lines[0] and "schema.d.ts" in lines[1]
    assert "warn" not in output.lower() and "⚠" not in output, output
    compile_flags = [
        "--strict",
        "--noEmitOnError",
        "--target",
        "es2022",
        "--module",
        "nodenext",
        "--lib",
        "es2022,dom",
        "--outDir",
        "out",
    ]
    run([str(npm_tools / "tsc"), *compile_flags, "flows.mts"], work)
    result = json.loads(run(["node", "out/flows.mjs"], work).strip().splitlines()[-1])
    assert result["ok"] is True
    posts = [line.split() for line in result["requests"] if line.startswith("POST ")]
    assert len(posts) >= 9
    for _, url, content_type, *_ in posts:
        # A POST with only the bearer header has no body, so no Content-Type ("null").
        assert content_type.startswith("application/json") or url.endswith("/sessions"), url
        assert "?" not in url, url
    to_sessions = [line for line in result["requests"] if "/authorization/sessions" in line]
    assert len(to_sessions) == 3 and "?" not in "".join(to_sessions)
    assert sum(line.endswith(" bearer") for line in to_sessions) == 2
    assert not any(PASSWORD.split()[0] in line for line in result["requests"])

    # The front-end example of docs/front-end.md compiles against the same generated types,
    # as a bundler project would import them.
    shutil.copy(work / "schema.d.ts", work / "vhod.d.ts")
    (work / "readme-example.ts").write_text(readme_typescript())
    run(
        [
            str(npm_tools / "tsc"),
            "--strict",
            "--noEmit",
            "--target",
            "es2022",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            "--lib",
            "es2022,dom",
            "readme-example.ts",
        ],
        work,
    )


def readme_typescript() -> str:
    """The TypeScript block of the documentation's page on browser front ends."""
    page = (ROOT / "docs" / "front-end.md").read_text(encoding="utf-8")
    return page.split("```ts\n", 1)[1].split("```", 1)[0]
