"""The identities of an account over real HTTP, on SQLite and on the MongoDB wire server:
explicit linking by provider token and by the browser flow (one instance to another),
unlinking, identity_in_use, last_sign_in_method, account_exists and link_verified_email,
against the strict fake providers (tests/fakes/providers.py)."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
import pytest
from tornado.httpclient import AsyncHTTPClient

from core.domain.event_types import EventType
from storage.base import EventQuery
from tests.fakes.providers import consent
from tests.storage_fixtures import Running, running_app

IDENTITIES = "/authorization/identities"
LINK = f"{IDENTITIES}/link"
START = f"{IDENTITIES}/link/start"
UNLINK = f"{IDENTITIES}/unlink"
FRONT_END = "https://app.example.com/linked"
ANN = {"phone_number": "+79161234567", "email": "ann@example.com", "hash_password": "correct horse"}
BOB = {"phone_number": "+79161234568", "email": "bob@example.com", "hash_password": "correct horse"}
YANDEX_PHONE = "+79991234567"  # the fake Yandex user's default_phone: Yandex vouches for it


@pytest.fixture
def settings(fake_providers, smtp_inbox) -> dict[str, Any]:
    front_end = {"frontend_redirect": FRONT_END}
    return {
        "providers": fake_providers.sections(yandex=front_end, mailru=front_end),
        "limits.per_ip_per_minute": 1000,
        "limits.provider_timeout": 2.0,
        **smtp_inbox.config(),
    }


async def call(
    app: Running,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    query: dict[str, str] | None = None,
    access: str | None = None,
) -> tuple[int, Any, Any]:
    headers = {"Content-Type": "application/json"}
    if access is not None:
        headers["Authorization"] = f"Bearer {access}"
    url = app.url(path) + (f"?{urlencode(query)}" if query else "")
    if body is None and method == "POST":
        body = {}
    response = await AsyncHTTPClient().fetch(
        url,
        method=method,
        body=None if body is None else json.dumps(body),
        headers=headers,
        raise_error=False,
        follow_redirects=False,
        request_timeout=30,
    )
    parsed = json.loads(response.body) if response.body else None
    if response.code >= 400:
        assert set(parsed) - {"methods"} == {"error", "error_description"}, parsed
    return response.code, parsed, response.headers


async def register(app: Running, person: dict[str, str]) -> dict[str, str]:
    status, pair, _ = await call(app, "POST", "/authorization/registration", body=person)
    assert status == 200, pair
    return pair  # type: ignore[no-any-return]


def sub(access: str) -> str:
    return str(jwt.decode(access, options={"verify_signature": False})["sub"])


async def provider_login(app: Running, prefix: str, token: str) -> tuple[int, Any]:
    status, body, _ = await call(app, "GET", f"/{prefix}/login", query={"access_token": token})
    return status, body


async def events(app: Running, kind: EventType, user: str) -> list[Any]:
    await app.services.audit.flush()
    found = await app.services.store.list_events(
        EventQuery(limit=50, user_id=user, types=(str(kind),))
    )
    return list(found)


async def browser_link(
    start_on: Running, finish_on: Running, access: str, provider: str, prefix: str
) -> tuple[int, Any]:
    """link/start on one instance, consent at the fake, callback and get/token on another."""
    status, started, _ = await call(
        start_on, "POST", START, body={"provider": provider}, access=access
    )
    assert status == 200, started
    assert set(started) == {"url"}
    params = await consent(started["url"])
    status, _, headers = await call(finish_on, "GET", f"/{prefix}/callback", query=params)
    assert status == 302
    forwarded = dict(parse_qsl(urlsplit(headers["Location"]).query))
    assert forwarded["state"] == params["state"]  # the front end gets code and state
    query = {"code": forwarded["code"], "state": forwarded["state"]}
    status, body, _ = await call(
        finish_on, "GET", f"/{prefix}/get/token", query=query, access=access
    )
    return status, body


async def test_a_password_account_links_two_providers_signs_in_with_each_and_unlinks_one(
    tmp_path, backend_url, settings, fake_yandex, fake_mailru, smtp_inbox
):
    async with running_app(tmp_path, backend_url, **settings) as app:
        pair = await register(app, ANN)
        ann = sub(pair["access"])
        await app.services.store.set_verified(ann, "email", ANN["email"])  # notices go there
        status, before, headers = await call(app, "GET", IDENTITIES, access=pair["access"])
        assert status == 200 and headers["Cache-Control"] == "no-store"
        assert before == {
            "has_password": True,
            "email": {"value": "ann@example.com", "verified": True},
            "phone": {"value": "+79161234567", "verified": False},
            "providers": [],
            "passkeys": 0,
        }

        # Yandex by a provider token, as /yandex/login takes one.
        yandex_token = fake_yandex.mint_token()
        status, linked, _ = await call(
            app,
            "POST",
            LINK,
            body={"provider": "yandex", "access_token": yandex_token},
            access=pair["access"],
        )
        assert status == 200, linked
        [yandex] = linked["providers"]
        assert yandex["provider"] == "yandex" and yandex["display"] == "Иван Петров"
        assert isinstance(yandex["linked_at"], int)
        # Mail.ru by the browser flow.
        status, view = await browser_link(app, app, pair["access"], "mailru", "mail.ru")
        assert status == 200, view
        assert [p["provider"] for p in view["providers"]] == ["yandex", "mailru"]

        status, by_yandex = await provider_login(app, "yandex", yandex_token)
        assert status == 200 and sub(by_yandex["access"]) == ann
        mailru_token = fake_mailru.mint_token()
        status, by_mailru = await provider_login(app, "mail.ru", mailru_token)
        assert status == 200 and sub(by_mailru["access"]) == ann

        assert (
            await call(app, "POST", UNLINK, body={"provider": "yandex"}, access=pair["access"])
        )[1] is True
        assert (await provider_login(app, "yandex", yandex_token))[0] == 404
        assert (await provider_login(app, "mail.ru", mailru_token))[0] == 200
        status, after, _ = await call(app, "GET", IDENTITIES, access=pair["access"])
        assert [p["provider"] for p in after["providers"]] == ["mailru"]
        missing = await call(
            app, "POST", UNLINK, body={"provider": "yandex"}, access=pair["access"]
        )
        assert (missing[0], missing[1]["error"]) == (404, "identity_not_found")

        # Audited; no session ended; a notice for each change went to the verified email.
        linked_events = await events(app, EventType.IDENTITY_LINKED, ann)
        assert sorted((e.details["provider"], e.details["method"]) for e in linked_events) == [
            ("mailru", "browser"),
            ("yandex", "token"),
        ]
        [unlinked] = await events(app, EventType.IDENTITY_UNLINKED, ann)
        assert unlinked.details["provider"] == "yandex"
        for access in (pair["access"],):
            assert (await call(app, "GET", "/validate/jwt/access", query={"access": access}))[
                1
            ] is True
        status, refreshed, _ = await call(
            app, "POST", "/validate/jwt/refresh", body={"refresh": pair["refresh"]}
        )
        assert status == 200, refreshed
        # In the server's language (email.language, ru): a browser flow's end has no other.
        subjects = [m["Subject"] for m in smtp_inbox.to(ANN["email"])]
        assert subjects == [
            "К вашей учётной записи добавлен новый способ входа",
            "К вашей учётной записи добавлен новый способ входа",
            "Из вашей учётной записи удалён способ входа",
        ]
        bodies = [m.get_content() for m in smtp_inbox.to(ANN["email"])]
        assert "Yandex" in bodies[0] and "Mail.ru" in bodies[1]


async def test_a_provider_only_account_cannot_unlink_its_last_way_in(
    tmp_path, backend_url, settings, fake_yandex, fake_mailru
):
    async with running_app(tmp_path, backend_url, **settings) as app:
        token = fake_mailru.mint_token()
        status, pair, _ = await call(
            app, "GET", "/mail.ru/registration", query={"access_token": token}
        )
        assert status == 200, pair
        refused = await call(
            app, "POST", UNLINK, body={"provider": "mailru"}, access=pair["access"]
        )
        assert (refused[0], refused[1]["error"]) == (409, "last_sign_in_method")
        assert (await provider_login(app, "mail.ru", token))[0] == 200

        # With a second provider, the first may go; then the second is the last.
        linked = await call(
            app,
            "POST",
            LINK,
            body={"provider": "yandex", "access_token": fake_yandex.mint_token("no_email")},
            access=pair["access"],
        )
        assert linked[0] == 200, linked[1]
        # A provider's prefix names it as well as its name.
        assert (
            await call(app, "POST", UNLINK, body={"provider": "mail.ru"}, access=pair["access"])
        )[1] is True
        last = await call(app, "POST", UNLINK, body={"provider": "yandex"}, access=pair["access"])
        assert (last[0], last[1]["error"]) == (409, "last_sign_in_method")
        view = (await call(app, "GET", IDENTITIES, access=pair["access"]))[1]
        assert view["has_password"] is False
        assert [p["provider"] for p in view["providers"]] == ["yandex"]


async def test_a_second_account_cannot_take_a_linked_identity(
    tmp_path, backend_url, settings, fake_yandex
):
    async with running_app(tmp_path, backend_url, **settings) as app:
        ann = await register(app, ANN)
        bob = await register(app, BOB)
        token = fake_yandex.mint_token()
        body = {"provider": "yandex", "access_token": token}
        assert (await call(app, "POST", LINK, body=body, access=ann["access"]))[0] == 200
        # Linking it again to the same account changes nothing and is no error.
        again = await call(app, "POST", LINK, body=body, access=ann["access"])
        assert again[0] == 200 and len(again[1]["providers"]) == 1

        taken = await call(app, "POST", LINK, body=body, access=bob["access"])
        assert (taken[0], taken[1]["error"]) == (409, "identity_in_use")
        status, browser = await browser_link(app, app, bob["access"], "yandex", "yandex")
        assert (status, browser["error"]) == (409, "identity_in_use")

        # Nothing moved: Yandex still signs into Ann's account, Bob has none.
        status, signed_in = await provider_login(app, "yandex", token)
        assert status == 200 and sub(signed_in["access"]) == sub(ann["access"])
        assert (await call(app, "GET", IDENTITIES, access=bob["access"]))[1]["providers"] == []
        assert len(await events(app, EventType.IDENTITY_IN_USE, sub(bob["access"]))) >= 1
        # A second Yandex account for Ann: one identity per provider.
        other = {"provider": "yandex", "access_token": fake_yandex.mint_token("no_email")}
        second = await call(app, "POST", LINK, body=other, access=ann["access"])
        assert (second[0], second[1]["error"]) == (409, "provider_already_linked")


async def test_account_exists_where_a_silent_merge_would_have_happened(
    tmp_path, backend_url, settings, fake_yandex, fake_mailru
):
    async with running_app(tmp_path, backend_url, **settings) as app:
        # Ann's account holds the phone Yandex vouches for; Yandex registration used to make a
        # second, empty account beside it.
        ann = await register(app, {**ANN, "phone_number": YANDEX_PHONE})
        await call(
            app,
            "POST",
            LINK,
            body={"provider": "mailru", "access_token": fake_mailru.mint_token()},
            access=ann["access"],
        )
        token = fake_yandex.mint_token()
        status, body, _ = await call(
            app, "GET", "/yandex/registration", query={"access_token": token}
        )
        assert (status, body["error"]) == (409, "account_exists")
        assert body["methods"] == ["password", "mailru"]  # kinds of sign-in, not the account
        assert ANN["email"] not in json.dumps(body) and YANDEX_PHONE not in json.dumps(body)
        assert sub(ann["access"]) not in json.dumps(body)
        assert (await provider_login(app, "yandex", token))[0] == 404  # nothing was made
        [refused] = await events(app, EventType.ACCOUNT_EXISTS, sub(ann["access"]))
        assert refused.details["channel"] == "phone"
        # The way out: Ann signs in and links it.
        linked = await call(
            app,
            "POST",
            LINK,
            body={"provider": "yandex", "access_token": token},
            access=ann["access"],
        )
        assert linked[0] == 200, linked[1]
        status, signed_in = await provider_login(app, "yandex", token)
        assert status == 200 and sub(signed_in["access"]) == sub(ann["access"])

        # An email the provider does not vouch for meets nobody: a new account, as before.
        fake_yandex.users["other"] = {
            **fake_yandex.users["no_email"],
            "id": "1130000000000003",
            "default_email": BOB["email"],
        }
        await register(app, BOB)
        status, other, _ = await call(
            app,
            "GET",
            "/yandex/registration",
            query={"access_token": fake_yandex.mint_token("other")},
        )
        assert status == 200, other


@pytest.mark.parametrize("verified", [True, False])
async def test_link_verified_email_links_a_verified_match_and_only_that(
    tmp_path, backend_url, settings, fake_mailru, verified
):
    fake_mailru.users["default"]["email"] = ANN["email"].replace("example.com", "mail.ru")
    person = {**ANN, "email": fake_mailru.users["default"]["email"]}
    overrides = {**settings, "social.link_verified_email": True}
    async with running_app(tmp_path, backend_url, **overrides) as app:
        ann = await register(app, person)
        if verified:
            await app.services.store.set_verified(sub(ann["access"]), "email", person["email"])
        token = fake_mailru.mint_token()  # Mail.ru vouches for its own mailboxes
        status, body, _ = await call(
            app, "GET", "/mail.ru/registration", query={"access_token": token}
        )
        if not verified:  # the account never proved the address: no link
            assert (status, body["error"], body["methods"]) == (409, "account_exists", ["password"])
            return
        assert status == 200, body
        assert sub(body["access"]) == sub(ann["access"])
        status, signed_in = await provider_login(app, "mail.ru", token)
        assert status == 200 and sub(signed_in["access"]) == sub(ann["access"])
        [auto] = await events(app, EventType.IDENTITY_LINKED, sub(ann["access"]))
        assert auto.details["method"] == "verified_email"


async def test_link_verified_email_is_off_by_default(tmp_path, backend_url, settings, fake_mailru):
    fake_mailru.users["default"]["email"] = "ann@mail.ru"
    async with running_app(tmp_path, backend_url, **settings) as app:
        ann = await register(app, {**ANN, "email": "ann@mail.ru"})
        await app.services.store.set_verified(sub(ann["access"]), "email", "ann@mail.ru")
        token = fake_mailru.mint_token()
        status, body, _ = await call(
            app, "GET", "/mail.ru/registration", query={"access_token": token}
        )
        assert (status, body["error"], body["methods"]) == (409, "account_exists", ["password"])
        assert (await provider_login(app, "mail.ru", token))[0] == 404


async def test_a_browser_link_started_on_one_instance_finishes_on_another(
    tmp_path, backend_url, settings, fake_yandex
):
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(
            running_app(tmp_path / "a", backend_url, **settings)
        )
        second = await stack.enter_async_context(
            running_app(tmp_path / "b", backend_url, **settings)
        )
        ann = await register(first, ANN)
        status, view = await browser_link(first, second, ann["access"], "yandex", "yandex")
        assert status == 200, view
        assert [p["provider"] for p in view["providers"]] == ["yandex"]
        status, signed_in = await provider_login(first, "yandex", fake_yandex.mint_token())
        assert status == 200 and sub(signed_in["access"]) == sub(ann["access"])


async def test_a_link_flow_finishes_only_for_the_account_that_started_it(
    tmp_path, backend_url, settings
):
    async with running_app(tmp_path, backend_url, **settings) as app:
        ann = await register(app, ANN)
        bob = await register(app, BOB)
        status, started, _ = await call(
            app, "POST", START, body={"provider": "yandex"}, access=ann["access"]
        )
        params = await consent(started["url"])
        status, _, _ = await call(app, "GET", "/yandex/callback", query=params)
        assert status == 302  # to the front end: the callback never links by itself
        query = {"code": params["code"], "state": params["state"]}
        anonymous = await call(app, "GET", "/yandex/get/token", query=query)
        assert (anonymous[0], anonymous[1]["error"]) == (401, "invalid_token")
        someone_else = await call(
            app, "GET", "/yandex/get/token", query=query, access=bob["access"]
        )
        assert (someone_else[0], someone_else[1]["error"]) == (400, "invalid_state")
        # Neither spent the state: Ann finishes.
        status, view, _ = await call(
            app, "GET", "/yandex/get/token", query=query, access=ann["access"]
        )
        assert status == 200 and [p["provider"] for p in view["providers"]] == ["yandex"]
        assert "access_token" not in view  # a link answers no provider tokens
        assert (await call(app, "GET", IDENTITIES, access=bob["access"]))[1]["providers"] == []


async def test_a_disabled_account_cannot_link(tmp_path, backend_url, settings, fake_yandex):
    async with running_app(tmp_path, backend_url, **settings) as app:
        ann = await register(app, ANN)
        status, started, _ = await call(
            app, "POST", START, body={"provider": "yandex"}, access=ann["access"]
        )
        assert status == 200
        params = await consent(started["url"])
        await app.services.store.set_user_disabled(sub(ann["access"]), True)
        body = {"provider": "yandex", "access_token": fake_yandex.mint_token()}
        for refused in (
            await call(app, "POST", LINK, body=body, access=ann["access"]),
            await call(app, "POST", START, body={"provider": "yandex"}, access=ann["access"]),
            await call(app, "GET", IDENTITIES, access=ann["access"]),
            await call(
                app,
                "GET",
                "/yandex/get/token",
                query={"code": params["code"], "state": params["state"]},
                access=ann["access"],
            ),
        ):
            assert (refused[0], refused[1]["error"]) == (403, "account_disabled")
        assert await app.services.store.find_user_by_identity("yandex", "1130000012345678") is None


async def test_link_requests_are_checked(tmp_path, backend_url, fake_providers):
    settings = {"providers": fake_providers.sections(), "limits.per_ip_per_minute": 1000}
    async with running_app(tmp_path, backend_url, **settings) as app:
        ann = await register(app, ANN)
        no_token = await call(app, "POST", LINK, body={"provider": "yandex", "access_token": "x"})
        assert (no_token[0], no_token[1]["error"]) == (400, "invalid_request")
        unknown = await call(
            app, "POST", LINK, body={"provider": "nope", "access_token": "x"}, access=ann["access"]
        )
        assert (unknown[0], unknown[1]["error"]) == (400, "invalid_request")
        # Without frontend_redirect there is nowhere safe for the browser to finish.
        no_front = await call(app, "POST", START, body={"provider": "yandex"}, access=ann["access"])
        assert (no_front[0], no_front[1]["error"]) == (400, "invalid_request")
        forged = await call(
            app,
            "POST",
            LINK,
            body={"provider": "yandex", "access_token": "not-a-yandex-token"},
            access=ann["access"],
        )
        assert forged[0] == 401 and forged[1]["error"] == "invalid_provider_token"
