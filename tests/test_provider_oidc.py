"""The generic OpenID Connect provider against panva's oidc-provider (certified), end to end:
a config section and no code, three client authentications, token substitution refused."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from core.domain.errors import ApiError
from providers.oidc_tokens import nonce_for
from tests.oidc_provider import OpenIdProvider, install
from tests.processes import free_port

pytestmark = pytest.mark.slow

PUBLIC_URL = "http://127.0.0.1:8888"  # make_config's default public_url
FRONT_END = "https://app.example.com/signed-in"
CLIENTS = {
    # prefix: (client_id, client_auth)
    "op-basic": ("basic-client", "client_secret_basic"),
    "op-post": ("post-client", "client_secret_post"),
    "op-public": ("public-client", "none"),
}
OTHER = ("other-client", "other-secret-0123456789abcdef")


def secret_of(client_id: str) -> str:
    return f"{client_id}-secret-0123456789abcdef"


def static_clients() -> list[dict[str, Any]]:
    clients = [
        {
            "client_id": client_id,
            **({"client_secret": secret_of(client_id)} if auth != "none" else {}),
            "token_endpoint_auth_method": auth,
            "redirect_uris": [f"{PUBLIC_URL}/{prefix}/callback"],
            "response_types": ["code"],
            "grant_types": ["authorization_code"],
        }
        for prefix, (client_id, auth) in CLIENTS.items()
    ]
    clients.append(
        {
            "client_id": OTHER[0],
            "client_secret": OTHER[1],
            "redirect_uris": ["https://other.example.com/callback"],
            "response_types": ["code"],
            "grant_types": ["authorization_code"],
        }
    )
    return clients


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIdProvider]:
    install()
    server = OpenIdProvider(tmp_path_factory.mktemp("oidc-provider"), static_clients())
    yield server
    server.stop()


def section(op: OpenIdProvider, prefix: str, **overrides: Any) -> dict[str, Any]:
    client_id, auth = CLIENTS[prefix]
    values: dict[str, Any] = {
        "type": "oidc",
        "issuer": op.issuer,
        "prefix": prefix,
        "title": "Test OP",
        "client_id": client_id,
        "client_auth": auth,
        "frontend_redirect": FRONT_END,
    }
    if auth != "none":
        values["client_secret"] = secret_of(client_id)
    values.update(overrides)
    return values


@pytest.fixture
def config_overrides(op: OpenIdProvider) -> dict[str, Any]:
    return {
        "providers": {prefix.replace("-", "_"): section(op, prefix) for prefix in CLIENTS},
        "limits.per_ip_per_minute": 1000,
    }


async def front_end_code(api: Any, op: OpenIdProvider, prefix: str) -> dict[str, str]:
    """link → login and consent at the OP → callback → the front end's query."""
    url = (await api.get(f"/{prefix}/link")).body
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"][0]
    assert "openid" in query["scope"][0].split()
    back = await op.sign_in(url)
    assert back.get("iss") == op.issuer, back  # RFC 9207: the OP names itself
    callback = await api.get(f"/{prefix}/callback", query=back)
    assert callback.status == 302, callback.body
    return dict(parse_qs(urlsplit(callback.headers["Location"]).query, max_num_fields=10))


async def provider_token(api: Any, op: OpenIdProvider, prefix: str) -> str:
    front = {k: v[0] for k, v in (await front_end_code(api, op, prefix)).items()}  # type: ignore[index]
    tokens = await api.get(
        f"/{prefix}/get/token", query={"code": front["code"], "state": front["state"]}
    )
    assert tokens.status == 200, tokens.body
    return tokens.body["access_token"]


@pytest.mark.parametrize("prefix", list(CLIENTS))
async def test_the_whole_flow_with_each_client_authentication(
    api: Any, op: OpenIdProvider, prefix: str
) -> None:
    access = await provider_token(api, op, prefix)
    registered = await api.get(f"/{prefix}/registration", query={"access_token": access})
    assert registered.status == 200, registered.body
    logged_in = await api.get(f"/{prefix}/login", query={"access_token": access})
    assert logged_in.status == 200, logged_in.body


async def other_clients_token(op: OpenIdProvider) -> dict[str, Any]:
    """A token the same OP issued to another client (its own code exchange)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "response_type": "code",
        "client_id": OTHER[0],
        "redirect_uri": "https://other.example.com/callback",
        "scope": "openid email profile",
        "state": secrets.token_urlsafe(16),
        "nonce": "other-nonce",
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    back = await op.sign_in(f"{op.issuer}/auth?{urlencode(params)}")
    form = {
        "grant_type": "authorization_code",
        "code": back["code"],
        "redirect_uri": params["redirect_uri"],
        "code_verifier": verifier,
    }
    basic = base64.b64encode(f"{OTHER[0]}:{OTHER[1]}".encode()).decode()
    response = await AsyncHTTPClient().fetch(
        HTTPRequest(
            f"{op.issuer}/token",
            method="POST",
            body=urlencode(form),
            headers={"Authorization": f"Basic {basic}"},
        )
    )
    return json.loads(response.body)


@pytest.mark.parametrize("prefix", list(CLIENTS))
async def test_a_token_the_op_issued_to_another_client_is_refused(
    api: Any, op: OpenIdProvider, prefix: str
) -> None:
    foreign = (await other_clients_token(op))["access_token"]
    for route in ("registration", "login"):
        answer = await api.get(f"/{prefix}/{route}", query={"access_token": foreign})
        assert (answer.status, answer.body["error"]) == (401, "invalid_provider_token")


async def test_a_token_from_our_own_exchange_is_ours_on_every_instance(
    api: Any, op: OpenIdProvider, services: Any
) -> None:
    access = await provider_token(api, op, "op-public")
    # Remembered in the store (hashed), so another instance on the same store knows it.
    from core.domain.social import token_fingerprint

    kept = await services.store.exchanged_token_claims(
        "op_public", token_fingerprint(access), services.social.clock()
    )
    assert kept is not None


async def test_a_wrong_client_secret_is_reported_as_the_client_authentication(
    api: Any, op: OpenIdProvider, services: Any
) -> None:
    provider = services.providers["op_basic"]
    provider.settings = type(provider.settings)(
        **{**provider.settings.__dict__, "client_secret": "not-the-secret"}
    )
    front = await front_end_code(api, op, "op-basic")
    answer = await api.get(
        "/op-basic/get/token", query={"code": front["code"][0], "state": front["state"][0]}
    )
    assert (answer.status, answer.body["error"]) == (502, "provider_unavailable")
    assert "client authentication (client_secret_basic)" in answer.body["error_description"]


# ---- id_token checks with the OP's real keys ---------------------------------------------


async def real_id_token(op: OpenIdProvider) -> str:
    return (await other_clients_token(op))["id_token"]


async def test_an_id_token_for_another_audience_is_refused(services: Any, op: Any) -> None:
    provider = services.providers["op_basic"]
    await provider.ready()
    token = await real_id_token(op)  # signed by the OP, aud other-client
    with pytest.raises(ApiError) as caught:
        await provider.id_tokens.check(token, code_verifier="v" * 43)
    assert caught.value.status == 502 and "does not hold" in caught.value.description


async def test_a_forged_id_token_is_refused(services: Any, op: Any) -> None:
    provider = services.providers["op_basic"]
    await provider.ready()
    kid = next(iter(provider.id_tokens.keys))
    verifier = "v" * 43
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    claims = {
        "iss": op.issuer,
        "aud": "basic-client",
        "sub": "victim",
        "iat": 1_900_000_000 - 10,
        "exp": 4_000_000_000,
        "nonce": nonce_for(challenge.rstrip(b"=").decode()),
    }
    ours = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, ours, algorithm="RS256", headers={"kid": kid})
    with pytest.raises(ApiError) as caught:
        await provider.id_tokens.check(forged, code_verifier=verifier)
    assert caught.value.status == 502
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(ApiError) as caught:
        await provider.id_tokens.check(unsigned, code_verifier=verifier)
    assert "algorithm not allowed" in caught.value.description


async def test_an_unknown_kid_refetches_the_keys_at_most_once_a_minute(
    services: Any, op: Any
) -> None:
    provider = services.providers["op_post"]
    now = [1000.0]
    provider.clock = lambda: now[0]
    await provider.ready()
    checker = provider.id_tokens
    before = checker.fetches
    assert await checker.key_for("rotated-0") is None  # just read: no refetch yet
    assert checker.fetches == before
    now[0] += 61
    assert await checker.key_for("rotated-1") is None
    assert await checker.key_for("rotated-2") is None
    assert checker.fetches == before + 1  # once, not per made-up kid
    now[0] += 61
    assert await checker.key_for("rotated-3") is None
    assert checker.fetches == before + 2


# ---- discovery unavailable at start ------------------------------------------------------


@pytest.fixture
def late_port() -> int:
    return free_port()


async def test_an_unreachable_discovery_is_503_until_it_can_be_read(
    api: Any, services: Any, tmp_path: Any, late_port: int
) -> None:
    provider = services.providers["op_basic"]
    provider.issuer = f"http://127.0.0.1:{late_port}"
    provider._discovered_at = None
    answer = await api.get("/op-basic/link")
    assert (answer.status, answer.body["error"]) == (503, "provider_unavailable")
    assert "discovery document" in answer.body["error_description"]
    assert (await api.get("/op-post/link")).status == 200  # the others work
    later = OpenIdProvider(tmp_path, static_clients(), port=late_port)
    try:
        assert (await api.get("/op-basic/link")).status == 200
    finally:
        later.stop()
