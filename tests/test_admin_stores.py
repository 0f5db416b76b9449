"""The operator's story on SQLite and on MongoDB over the wire: find, disable, sign out, and
read each action back from /admin/events; the log is shared by two instances on one store
and survives a restart. Plus: no key, no admin routes; the per-address limit."""

from __future__ import annotations

import json
from typing import Any

from tornado.httpclient import AsyncHTTPClient

from core.domain.admin import new_admin_key
from tests.conftest import USER
from tests.storage_fixtures import Running, running_app

KEY, KEY_HASH = new_admin_key()
ADMIN = {"admin.keys": {"night-shift": KEY_HASH}}


async def call(
    app: Running, method: str, path: str, body: Any = None, *, key: str | None = KEY
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    response = await AsyncHTTPClient().fetch(
        app.url(path),
        method=method,
        body=None if body is None and method == "GET" else json.dumps(body or {}),
        headers=headers,
        raise_error=False,
        request_timeout=60,
    )
    return response.code, json.loads(response.body or b"null")


async def test_find_disable_sign_out_and_read_back_on_every_backend(tmp_path, backend_url):
    async with running_app(tmp_path / "a", backend_url, **ADMIN) as first:
        status, pair = await call(first, "POST", "/authorization/registration", USER, key=None)
        assert status == 200, pair
        status, found = await call(first, "GET", "/admin/users?query=ann%40example.com")
        assert status == 200, found
        [user] = found["users"]
        user_id = user["id"]
        async with running_app(tmp_path / "b", backend_url, **ADMIN) as second:
            status, body = await call(second, "POST", f"/admin/users/{user_id}/disable")
            assert (status, body["disabled"]) == (200, True)
            login = await call(first, "POST", "/authorization/login/email", USER, key=None)
            assert (login[0], login[1]["error"]) == (403, "account_disabled")
            await call(second, "POST", f"/admin/users/{user_id}/enable")
            status, _ = await call(first, "POST", f"/admin/users/{user_id}/sessions/revoke")
            assert status == 200
            refreshed = await call(
                second, "POST", "/validate/jwt/refresh", {"refresh": pair["refresh"]}, key=None
            )
            assert refreshed[0] == 401
            await first.services.audit.flush()
            # Each instance reads what the other wrote.
            for app in (first, second):
                status, page = await call(app, "GET", f"/admin/events?user={user_id}")
                assert status == 200
                types = [e["type"] for e in page["events"]]
                assert types == [
                    "admin_sessions_revoked",
                    "admin_user_enabled",
                    "disabled_sign_in",
                    "admin_user_disabled",
                    "registered",
                ]
    # A new instance (a restart) on the same store reads the same log.
    async with running_app(tmp_path / "c", backend_url, **ADMIN) as restarted:
        status, page = await call(restarted, "GET", f"/admin/events?user={user_id}&limit=2")
        assert status == 200 and len(page["events"]) == 2
        status, rest = await call(
            restarted, "GET", f"/admin/events?user={user_id}&cursor={page['next_cursor']}"
        )
        admins = {e["details"].get("admin") for e in page["events"] + rest["events"]}
        assert "night-shift" in admins
        assert len(page["events"] + rest["events"]) == 5


async def test_without_a_key_the_admin_routes_are_absent(tmp_path):
    async with running_app(tmp_path, f"sqlite:///{tmp_path}/vhod.db") as app:
        for path in ("/admin/users", "/admin/events", "/admin/users/x/disable"):
            method = "POST" if path.endswith("disable") else "GET"
            status, body = await call(app, method, path)
            assert (status, body["error"]) == (404, "not_found"), path


async def test_admin_requests_are_limited_per_address_whatever_the_key(tmp_path):
    settings = {**ADMIN, "admin.per_ip_per_minute": 3}
    async with running_app(tmp_path, f"sqlite:///{tmp_path}/vhod.db", **settings) as app:
        statuses = [(await call(app, "GET", "/admin/users", key="wrong"))[0] for _ in range(3)]
        assert statuses == [401, 401, 401]
        assert (await call(app, "GET", "/admin/users"))[0] == 429
        assert (await call(app, "GET", "/admin/users", key="wrong"))[0] == 429
        # Sign-in keeps its own count.
        status, _ = await call(app, "POST", "/authorization/registration", USER, key=None)
        assert status == 200
