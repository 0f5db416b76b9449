"""Telegram, T-ID and Sber ID sign in end to end over real HTTP through vhod, against strict
fakes built from their public docs (tests/fakes/providers_2026.py)."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from tornado.ioloop import IOLoop

from core.domain.social import token_fingerprint
from providers.registry import BUILTIN_PROVIDERS, build_providers
from providers.transport import Channel
from tests.fakes.providers import consent
from tests.fakes.providers_2026 import FakeSber, FakeTelegram, FakeTID
from tests.fakes.tls_ca import TestCA

PUBLIC_URL = "http://127.0.0.1:8888"  # make_config's default public_url
FRONT_END = "https://app.example.com/signed-in"


def started(fake: Any, io_loop: IOLoop, prefix: str) -> Any:
    fake.redirect_uris = {f"{PUBLIC_URL}/{prefix}/callback"}  # registered exactly
    return fake.start()


@pytest.fixture
def telegram(io_loop: IOLoop) -> Iterator[FakeTelegram]:
    fake = started(FakeTelegram(), io_loop, "telegram")
    yield fake
    io_loop.run_sync(fake.aclose, timeout=5)


@pytest.fixture
def tid(io_loop: IOLoop) -> Iterator[FakeTID]:
    fake = started(FakeTID(), io_loop, "tid")
    yield fake
    io_loop.run_sync(fake.aclose, timeout=5)


@pytest.fixture
def sber(io_loop: IOLoop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeSber]:
    fake = started(FakeSber(tmp_path_factory.mktemp("sber-ca")), io_loop, "sber")
    yield fake
    io_loop.run_sync(fake.aclose, timeout=5)


@pytest.fixture
def config_overrides(telegram: FakeTelegram, tid: FakeTID, sber: FakeSber) -> dict[str, Any]:
    return {
        "providers": {
            "telegram": telegram.section(frontend_redirect=FRONT_END),
            "tid": tid.section(frontend_redirect=FRONT_END),
            "sber": sber.section(frontend_redirect=FRONT_END),
        },
        "limits.per_ip_per_minute": 1000,
    }


async def front_end_code(api: Any, prefix: str, **consent_args: Any) -> dict[str, str]:
    """link → the provider's consent → callback → the front end's code and state."""
    url = (await api.get(f"/{prefix}/link")).body
    back = await consent(url, **consent_args)
    assert "code" in back, back
    callback = await api.get(f"/{prefix}/callback", query=back)
    assert callback.status == 302, callback.body
    location = callback.headers["Location"]
    assert location.startswith(FRONT_END)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def get_token(api: Any, prefix: str, **consent_args: Any) -> Any:
    front = await front_end_code(api, prefix, **consent_args)
    return await api.get(
        f"/{prefix}/get/token", query={"code": front["code"], "state": front["state"]}
    )


async def provider_token(api: Any, prefix: str, **consent_args: Any) -> str:
    tokens = await get_token(api, prefix, **consent_args)
    assert tokens.status == 200, tokens.body
    token: str = tokens.body["access_token"]
    return token


async def register_and_login(api: Any, prefix: str, access: str) -> None:
    registered = await api.get(f"/{prefix}/registration", query={"access_token": access})
    assert registered.status == 200, registered.body
    logged_in = await api.get(f"/{prefix}/login", query={"access_token": access})
    assert logged_in.status == 200, logged_in.body
    assert set(logged_in.body) >= {"access", "refresh"}


# ---- Telegram -------------------------------------------------------------------------------


async def test_telegram_signs_in_with_its_verified_phone_and_sub(
    api: Any, services: Any, telegram: FakeTelegram
) -> None:
    url = (await api.get("/telegram/link")).body
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(telegram.url("authorize"))  # from discovery
    assert query["scope"] == ["openid profile phone"]
    assert query["code_challenge_method"] == ["S256"] and query["nonce"][0]
    access = await provider_token(api, "telegram")
    token_call = [r for r in telegram.requests if r.endpoint == "token"][-1]
    assert token_call.headers["Authorization"].startswith("Basic ")
    assert token_call.form["client_id"] == [telegram.client_id]
    await register_and_login(api, "telegram", access)
    user = telegram.users["default"]
    found = await services.store.find_user_by_identity("telegram", user["sub"])
    assert found is not None
    assert (found.phone, found.phone_verified) == ("+971501234567", True)
    assert found.profile.get("first_name") == "Ivan Petrov"
    # The claims live with the token's hash in the store, so any instance can sign in.
    kept = await services.store.exchanged_token_claims(
        "telegram", token_fingerprint(access), services.social.clock()
    )
    assert kept is not None and kept["sub"] == user["sub"] and "nonce" not in kept


async def test_telegram_without_a_nonce_in_the_id_token_still_signs_in(
    api: Any, telegram: FakeTelegram
) -> None:
    telegram.echo_nonce = False  # the docs show the nonce only in the JS library's flow
    access = await provider_token(api, "telegram")
    await register_and_login(api, "telegram", access)


async def test_telegram_refuses_an_id_token_for_another_sign_in(
    api: Any, telegram: FakeTelegram
) -> None:
    original = telegram.id_token
    telegram.id_token = lambda grant: original(grant, nonce="another-sign-in")  # type: ignore[method-assign]
    tokens = await get_token(api, "telegram")
    assert (tokens.status, tokens.body["error"]) == (502, "provider_unavailable")
    assert "nonce" in tokens.body["error_description"]


async def test_telegram_refuses_an_id_token_not_signed_by_its_keys(
    api: Any, telegram: FakeTelegram
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    await api.get("/telegram/link")  # discovery and keys read with the real key
    telegram.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tokens = await get_token(api, "telegram")
    assert (tokens.status, tokens.body["error"]) == (502, "provider_unavailable")


async def test_telegram_tokens_from_elsewhere_are_refused(api: Any, telegram: FakeTelegram) -> None:
    # Telegram has no user info: a token vhod did not obtain names nobody.
    foreign = telegram.mint_token()
    for route in ("registration", "login"):
        answer = await api.get(f"/telegram/{route}", query={"access_token": foreign})
        assert (answer.status, answer.body["error"]) == (401, "invalid_provider_token")


async def test_telegram_refuses_a_wrong_client_secret_and_redirect_uri(
    api: Any, services: Any, telegram: FakeTelegram
) -> None:
    provider = services.providers["telegram"]
    await provider.ready()  # the endpoints from discovery
    right = provider.settings
    provider.settings = dataclasses.replace(right, client_secret="not-the-secret")
    tokens = await get_token(api, "telegram")
    assert (tokens.status, tokens.body["error"]) == (502, "provider_unavailable")
    assert "client_secret_basic" in tokens.body["error_description"]
    provider.settings = dataclasses.replace(right, redirect_uri=f"{PUBLIC_URL}/elsewhere")
    url = (await api.get("/telegram/link")).body
    with pytest.raises(AssertionError, match="not registered"):
        await consent(url)


# ---- T-ID ---------------------------------------------------------------------------------


async def test_tid_signs_in_with_pkce_and_its_user_info(
    api: Any, services: Any, tid: FakeTID
) -> None:
    url = (await api.get("/tid/link")).body
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(tid.url("authorize")) and "scope" not in query
    assert query["code_challenge_method"] == ["S256"]
    access = await provider_token(api, "tid")
    assert access.startswith("t.")
    await register_and_login(api, "tid", access)
    userinfo = [r for r in tid.requests if r.endpoint == "userinfo"][-1]
    assert userinfo.method == "POST" and userinfo.form["client_id"] == [tid.client_id]
    user = tid.users["default"]
    found = await services.store.find_user_by_identity("tid", user["sub"])
    assert found is not None
    # T-ID's docs name no verified flags: the phone and email stay in the profile only.
    assert (found.phone, found.email) == (None, None)
    assert found.profile["phone"] == "+79991112233"


async def test_tid_refuses_a_wrong_pkce_verifier(api: Any, services: Any, tid: FakeTID) -> None:
    front = await front_end_code(api, "tid")
    record = await services.store.find_state("tid", front["state"], services.social.clock())
    await services.store.consume_state("tid", front["state"])
    wrong = dataclasses.replace(record, code_verifier="x" * 43)
    await services.store.put_state(wrong)
    answer = await api.get("/tid/get/token", query=front)
    assert (answer.status, answer.body["error"]) == (400, "invalid_grant")


async def test_tid_token_from_elsewhere_is_proven_by_introspection(api: Any, tid: FakeTID) -> None:
    ours = tid.mint_token()
    answer = await api.get("/tid/registration", query={"access_token": ours})
    assert answer.status == 200, answer.body
    theirs = tid.mint_token(client_id="another-bank-app")
    answer = await api.get("/tid/login", query={"access_token": theirs})
    assert (answer.status, answer.body["error"]) == (401, "invalid_provider_token")


# ---- Sber ID -------------------------------------------------------------------------------


async def test_sber_signs_in_over_mutual_tls_with_a_fresh_rquid_per_call(
    api: Any, services: Any, sber: FakeSber
) -> None:
    url = (await api.get("/sber/link")).body
    query = parse_qs(urlsplit(url).query)
    assert query["client_type"] == ["PRIVATE"] and query["nonce"][0]
    assert query["scope"] == ["openid name email mobile"]
    access = await provider_token(api, "sber")
    await register_and_login(api, "sber", access)
    token = next(r for r in sber.requests if r.endpoint == "token")
    infos = [r for r in sber.requests if r.endpoint == "userinfo"]
    assert len(infos) == 2  # registration and login
    ids = [token.headers["Rquid"], *(r.headers["X-Introspect-Rquid"] for r in infos)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and len(set(ids)) == 3
    assert token.form["client_secret"] == [sber.client_secret]
    user = sber.users["default"]
    found = await services.store.find_user_by_identity("sber", user["sub"])
    assert found is not None and found.profile["phone"] == "+79991234567"


async def test_sber_sign_in_fails_without_the_client_certificate(
    api: Any, services: Any, sber: FakeSber, tmp_path: Path
) -> None:
    provider = services.providers["sber"]
    with_cert = provider.channel
    provider.channel = Channel(ca_file=with_cert.ca_file, headers=with_cert.headers)
    tokens = await get_token(api, "sber")
    assert (tokens.status, tokens.body["error"]) == (502, "provider_unavailable")
    assert sber.calls["token"] == 0  # refused in the TLS handshake, before any request
    # A certificate of another CA is refused the same way.
    stranger = TestCA(tmp_path, "another CA").issue("stranger", server=False)
    provider.channel = dataclasses.replace(
        with_cert, client_cert=str(stranger.cert), client_key=str(stranger.key)
    )
    tokens = await get_token(api, "sber")
    assert (tokens.status, tokens.body["error"]) == (502, "provider_unavailable")
    assert sber.calls["token"] == 0
    provider.channel = with_cert
    assert (await get_token(api, "sber")).status == 200


async def test_sber_refuses_a_token_call_without_rquid(
    api: Any, services: Any, sber: FakeSber
) -> None:
    provider = services.providers["sber"]
    provider.channel = dataclasses.replace(provider.channel, headers={})
    tokens = await get_token(api, "sber")
    assert (tokens.status, tokens.body["error"]) == (400, "invalid_grant")
    assert "rquid" in tokens.body["error_description"]


async def test_sber_refuses_a_wrong_client_secret(api: Any, services: Any, sber: FakeSber) -> None:
    provider = services.providers["sber"]
    provider.settings = dataclasses.replace(provider.settings, client_secret="wrong")
    tokens = await get_token(api, "sber")
    assert (tokens.status, tokens.body["error"]) == (502, "provider_unavailable")
    assert "client_secret_post" in tokens.body["error_description"]


# ---- settings checked when the server starts ----------------------------------------------


def build(sections: dict[str, Any]) -> Any:
    return build_providers(BUILTIN_PROVIDERS, sections, public_url=PUBLIC_URL)


def test_sber_without_a_client_certificate_is_refused_at_the_start(sber: FakeSber) -> None:
    section = sber.section()
    for key in ("tls_client_cert", "tls_client_key"):
        section.pop(key)
    with pytest.raises(ValueError, match=r"providers\.sber\.tls_client_cert: Sber ID needs"):
        build({"sber": section})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tls_client_cert": "/nonexistent/cert.pem"}, "tls_client_cert: .* not a readable"),
        ({"tls_ca_file": "/nonexistent/ca.pem"}, "tls_ca_file: .* not a readable"),
        ({"tls_client_key": "CA"}, "tls_client_cert: not a PEM certificate with its"),
        ({"tls_ca_file": "KEY"}, "tls_ca_file: not PEM certificates"),
        ({"extra_headers": {"Authorization": "x"}}, "extra_headers.Authorization: not a header"),
        ({"extra_headers": {"rquid": "{other}"}}, "no placeholder but"),
        ({"extra_headers": {"bad header": "x"}}, "not a header vhod can send"),
        ({"extra_headers": "rquid"}, "extra_headers: expected a mapping of strings"),
    ],
)
def test_tls_files_and_headers_are_checked_at_the_start(
    sber: FakeSber, change: dict[str, Any], message: str
) -> None:
    section = sber.section()
    for key, value in change.items():
        # "CA" / "KEY": a readable file of the wrong kind (the key is no certificate).
        section[key] = (
            {"CA": str(sber.ca.ca_file), "KEY": section["tls_client_key"]}.get(value, value)
            if isinstance(value, str)
            else copy.deepcopy(value)
        )
    with pytest.raises(ValueError, match=message):
        build({"sber": section})


def test_an_encrypted_client_key_is_refused_at_the_start(sber: FakeSber, tmp_path: Path) -> None:
    """OpenSSL would ask for its password on the terminal at the first sign-in."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(sber.client_cert.key.read_bytes(), None)
    encrypted = tmp_path / "encrypted.key.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"password"),
        )
    )
    with pytest.raises(ValueError, match="unencrypted private key"):
        build({"sber": sber.section(tls_client_key=str(encrypted))})


def test_a_section_can_start_from_a_preset(telegram: FakeTelegram) -> None:
    providers = build(
        {"tgtest": {"preset": "telegram", **telegram.section(), "title": "Telegram test"}}
    )
    provider = providers["tgtest"]
    assert (provider.prefix, provider.title) == ("tgtest", "Telegram test")
    assert providers["telegram"].prefix == "telegram"  # the built-in one is still there
    assert provider.settings.scope == "openid profile phone" and provider.profile_in_id_token
    with pytest.raises(ValueError, match=r"providers\.x\.preset: expected one of"):
        build({"x": {"preset": "nope"}})
    with pytest.raises(ValueError, match=r"providers\.telegram\.type: expected one of oidc"):
        build({"telegram": {"type": "oauth2"}})


# ---- across instances, on both stores --------------------------------------------------------


async def test_telegram_sign_in_started_on_one_instance_finishes_on_another(
    backend_url: str, tmp_path: Path, telegram: FakeTelegram
) -> None:
    """The flow state and the id_token's claims live in the store: instance A runs link,
    callback and get/token; instance B registers and signs in with the token."""
    from tornado.httpclient import AsyncHTTPClient
    from tornado.httputil import url_concat

    from tests.storage_fixtures import running_app

    overrides = {
        "providers": {"telegram": telegram.section(frontend_redirect=FRONT_END)},
        "limits.per_ip_per_minute": 1000,
    }
    client = AsyncHTTPClient()

    async def get(app: Any, path: str, query: dict[str, str] | None = None) -> Any:
        url = url_concat(app.url(path), query or {})
        return await client.fetch(url, follow_redirects=False, raise_error=False)

    async with (
        running_app(tmp_path / "a", backend_url, **overrides) as a,
        running_app(tmp_path / "b", backend_url, **overrides) as b,
    ):
        link = json.loads((await get(a, "/telegram/link")).body)
        back = await consent(link)
        callback = await get(a, "/telegram/callback", back)
        assert callback.code == 302
        front = {k: v[0] for k, v in parse_qs(urlsplit(callback.headers["Location"]).query).items()}
        tokens = await get(a, "/telegram/get/token", front)
        assert tokens.code == 200, tokens.body
        access = json.loads(tokens.body)["access_token"]
        registered = await get(b, "/telegram/registration", {"access_token": access})
        assert registered.code == 200, registered.body
        logged_in = await get(b, "/telegram/login", {"access_token": access})
        assert logged_in.code == 200, logged_in.body
        user = await b.services.store.find_user_by_identity(
            "telegram", telegram.users["default"]["sub"]
        )
        assert user is not None and user.phone == "+971501234567" and user.phone_verified


async def test_telegram_refuses_an_id_token_without_the_nonce_when_it_is_required(
    api: Any, services: Any, telegram: FakeTelegram
) -> None:
    """The generic default (`id_token_nonce: required`) holds for a preset that sets it."""
    section = telegram.section(frontend_redirect=FRONT_END, id_token_nonce="required")
    provider = build({"telegram": section})["telegram"]
    running = services.providers["telegram"]
    running.settings, running._discovered_at = provider.settings, None  # read it again
    telegram.echo_nonce = False
    tokens = await get_token(api, "telegram")
    assert (tokens.status, tokens.body["error"]) == (502, "provider_unavailable")
    assert "nonce" in tokens.body["error_description"]


async def test_telegram_claims_too_large_to_keep_are_refused(
    api: Any, services: Any, telegram: FakeTelegram
) -> None:
    telegram.users["default"]["name"] = "Ivan " * 2000  # 10 kB, kept with the token
    tokens = await get_token(api, "telegram")
    assert (tokens.status, tokens.body["error"]) == (502, "provider_unavailable")
    assert "too large" in tokens.body["error_description"]


async def test_telegram_links_to_a_signed_in_account_by_the_browser_flow(
    api: Any, services: Any, telegram: FakeTelegram
) -> None:
    """Telegram has no user-info endpoint: the link flow reads the id_token's claims, as the
    sign-in does."""
    person = {"phone_number": "+79161230000", "email": "t@example.com", "hash_password": "pw pw pw"}
    pair = (await api.post("/authorization/registration", json_body=person)).body
    bearer = {"Authorization": f"Bearer {pair['access']}"}
    started = await api.post(
        "/authorization/identities/link/start", json_body={"provider": "telegram"}, headers=bearer
    )
    assert started.status == 200, started.body
    back = await consent(started.body["url"])
    callback = await api.get("/telegram/callback", query=back)
    assert callback.status == 302, callback.body
    front = {k: v[0] for k, v in parse_qs(urlsplit(callback.headers["Location"]).query).items()}
    linked = await api.get(
        "/telegram/get/token",
        query={"code": front["code"], "state": front["state"]},
        headers=bearer,
    )
    assert linked.status == 200, linked.body
    assert [p["provider"] for p in linked.body["providers"]] == ["telegram"]
    user = telegram.users["default"]
    found = await services.store.find_user_by_identity("telegram", user["sub"])
    assert found is not None and found.email == person["email"]
