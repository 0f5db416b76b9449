"""Shared fixtures: a configured vhod app on SQLite in a temporary folder, and a JSON client.

`api` is the client every HTTP test uses. Like JupyterHub's `api_request`, it checks the
contract's invariants on every response: JSON content type, and error bodies that are
exactly `{"error", "error_description"}` with no traceback (AP2).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

import core.domain.passwords
from core.config import Config, load_config
from core.infra.clock import FakeClock
from providers import discover_providers
from server import build_services, make_app

# Shared fixtures of their own modules: store/mongo_url and the strict fake providers.
pytest_plugins = [
    "tests.storage_fixtures",
    "tests.fakes.providers",
    "tests.fakes.channels",
    "tests.fakes.sms_gateways",
    "tests.fakes.smartcaptcha",
]

# The processes the tests start (servers, the CLI, the xdist workers) import the same
# modules dozens of times: let them cache compiled bytecode even where the environment
# turns that off, as some CI images do.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

TEST_SECRET = "test-secret-that-is-long-enough-for-hs256!"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files with slow tests first, each still whole and in its own order: the workers,
    which take a file at a time, start the long ones early and finish on short ones."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


# Argon2id as cheap as it goes, so that the hundreds of hashes the suite makes stay quick,
# set past the configuration's check (which refuses anything below OWASP's floor): the only
# way to get them, and not one an operator has. A test that names an argon2 setting keeps it.
# Servers the tests start as processes take `algorithm: bcrypt` at cost 4 instead.
CHEAP_ARGON2 = {"argon2_memory_kib": 64, "argon2_iterations": 1}


def make_config(tmp_path, **overrides: Any) -> Config:
    settings: dict[str, Any] = {
        "jwt.secret": TEST_SECRET,
        "passwords.bcrypt_rounds": 4,
        "server.data_dir": str(tmp_path),
        "storage.url": f"sqlite:///{tmp_path}/vhod.db",
        "limits.hash_workers": 2,
    }
    settings.update(overrides)
    config = load_config(None, environ={}, overrides=settings)
    cheap = {k: v for k, v in CHEAP_ARGON2.items() if f"passwords.{k}" not in overrides}
    return dataclasses.replace(config, passwords=dataclasses.replace(config.passwords, **cheap))


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """A test that runs server.main() in-process configures the root logger for a process;
    put it back, so later tests do not log into a closed captured stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for added in [h for h in root.handlers if h not in handlers]:
        added.close()  # stops a batching writer thread the test started
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def verified_hashes(monkeypatch):
    """Every stored hash a password was checked against (dummy ones too), on whichever
    thread, of either algorithm."""
    checked: list[str] = []
    original = core.domain.passwords.check_password

    def counting(secret: bytes, hashed: str) -> bool:
        checked.append(hashed)
        return original(secret, hashed)

    monkeypatch.setattr(core.domain.passwords, "check_password", counting)
    return checked


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    """Override in a test module to change settings: `{"jwt.rotate_refresh": True}`."""
    return {}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())


@pytest.fixture
def config(tmp_path, config_overrides) -> Config:
    return make_config(tmp_path, **config_overrides)


# Discovery reads every installed package's entry points; tests/test_provider_registry.py
# tests it, and the hundreds of apps the tests build take its result from one reading.
installed_providers = functools.cache(discover_providers)


@pytest.fixture
def services(io_loop, config, clock):
    services = io_loop.run_sync(
        lambda: build_services(config, clock=clock, provider_classes=installed_providers())
    )
    yield services
    io_loop.run_sync(services.close)


@pytest.fixture
def app(services):
    return make_app(services)


@dataclass
class Response:
    status: int
    body: Any
    headers: Any
    raw: bytes


class Api:
    """`settle`, when given, runs after every answer: the work the answer did not wait for
    (a reset's code going out) is done before the test looks at an inbox."""

    def __init__(self, client, settle: Callable[[], Awaitable[None]] | None = None) -> None:
        self.client = client
        self.settle = settle

    def url(self, path: str) -> str:
        return self.client.get_url(path)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | str | None = None,
    ) -> Response:
        headers = dict(headers or {})
        if query:
            path = f"{path}?{urlencode(query)}"
        if json_body is not None:
            body = json.dumps(json_body)
            headers.setdefault("Content-Type", "application/json")
        elif form is not None:
            body = urlencode(form)
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        response = await self.client.fetch(
            path,
            method=method,
            body=body,
            headers=headers,
            raise_error=False,
            follow_redirects=False,
        )
        if self.settle is not None:
            await self.settle()
        raw = response.body or b""
        parsed = check_response(response.code, response.headers, raw)
        return Response(response.code, parsed, response.headers, raw)

    async def get(self, path: str, **kwargs: Any) -> Response:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Response:
        return await self.call("POST", path, **kwargs)


def check_response(status: int, headers, raw: bytes) -> Any:
    if status in (204, 301, 302, 303, 307):
        return None
    assert headers.get("Content-Type", "").startswith("application/json"), (status, raw[:200])
    parsed = json.loads(raw)
    if status >= 400:
        # account_exists alone adds the kinds of sign-in of the account it met.
        added = {"methods"} if parsed.get("error") == "account_exists" else set()
        assert isinstance(parsed, dict), parsed
        assert set(parsed) == {"error", "error_description", *added}, parsed
        text = raw.decode()
        for leak in ("Traceback", 'File "', "$2b$", "$argon2", "Exception"):
            assert leak not in text, text
    return parsed


@pytest.fixture
def api(http_server_client, services) -> Api:
    return Api(http_server_client, settle=lambda: services.lifecycle.drain(30))


USER = {
    "phone_number": "+79161234567",
    "email": "ann@example.com",
    "hash_password": "correct horse",
}


@pytest.fixture
def user() -> dict[str, str]:
    return dict(USER)
