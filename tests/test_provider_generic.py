"""The generic provider (type: oidc / oauth2) against the shipped strict fake server
(providers.testing): token binding, id_token refusals, discovery and key rotation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tornado.ioloop import IOLoop

from providers.testing import FakeOAuthServer, consent
from tests.fakes.providers import closed_port_url


@pytest.fixture
def oidc(io_loop: IOLoop) -> Iterator[FakeOAuthServer]:
    server = FakeOAuthServer(oidc=True, client_id="oidc-client").start()
    yield server
    io_loop.run_sync(server.aclose, timeout=5)


@pytest.fixture
def plain(io_loop: IOLoop) -> Iterator[FakeOAuthServer]:
    server = FakeOAuthServer(
        oidc=False, client_id="oauth-client", auth_method="client_secret_post", introspection=False
    ).start()
    yield server
    io_loop.run_sync(server.aclose, timeout=5)


@pytest.fixture
def config_overrides(oidc: FakeOAuthServer, plain: FakeOAuthServer) -> dict[str, Any]:
    return {
        "providers": {
            "acme": oidc.section(prefix="acme", title="Acme ID"),
            "plain": plain.section(
                title="Plain OAuth", subject_claim="sub", token_check="exchange_only"
            ),
            "down": {
                "type": "oidc",
                "issuer": closed_port_url(),
                "client_id": "x",
                "client_secret": "y",
            },
        },
        "limits.per_ip_per_minute": 1000,
    }


async def sign_in(api: Any, prefix: str) -> Any:
    """link → consent → callback (which exchanges the code here, no front end)."""
    params = await consent((await api.get(f"/{prefix}/link")).body)
    return await api.get(f"/{prefix}/callback", query=params)


async def token_of(api: Any, prefix: str) -> str:
    answer = await sign_in(api, prefix)
    assert answer.status == 200, answer.body
    return answer.body["access_token"]


@pytest.mark.parametrize("prefix", ["acme", "plain"])
async def test_a_section_and_no_code_gives_a_working_sign_in(api: Any, prefix: str) -> None:
    access = await token_of(api, prefix)
    registered = await api.get(f"/{prefix}/registration", query={"access_token": access})
    assert registered.status == 200, registered.body
    assert (await api.get(f"/{prefix}/login", query={"access_token": access})).status == 200


async def test_our_clients_token_from_elsewhere_is_proven_by_introspection(
    api: Any, oidc: FakeOAuthServer
) -> None:
    ours = oidc.mint_token()  # issued to our client, but not through our exchange
    answer = await api.get("/acme/registration", query={"access_token": ours})
    assert answer.status == 200, answer.body
    assert oidc.calls["introspection"] == 1


@pytest.mark.parametrize("prefix", ["acme", "plain"])
async def test_a_token_issued_to_another_client_is_refused(
    api: Any, oidc: FakeOAuthServer, plain: FakeOAuthServer, prefix: str
) -> None:
    server = oidc if prefix == "acme" else plain
    foreign = server.mint_token(client_id="another-app")
    for route in ("registration", "login"):
        answer = await api.get(f"/{prefix}/{route}", query={"access_token": foreign})
        assert (answer.status, answer.body["error"]) == (401, "invalid_provider_token")


async def test_without_any_proof_the_refusal_says_why(api: Any, plain: FakeOAuthServer) -> None:
    answer = await api.get("/plain/registration", query={"access_token": plain.mint_token()})
    assert (answer.status, answer.body["error"]) == (401, "invalid_provider_token")
    assert "only tokens from this server's own get/token" in answer.body["error_description"]
    assert plain.calls["userinfo"] == 0  # refused before the token went anywhere


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("no_id_token", "without an id_token"),
        ("forged_id_token", "does not hold"),
        ("wrong_audience", "does not hold"),
        ("wrong_nonce", "nonce"),
    ],
)
async def test_a_bad_id_token_fails_the_exchange(
    api: Any, oidc: FakeOAuthServer, mode: str, words: str
) -> None:
    params = await consent((await api.get("/acme/link")).body)
    oidc.mode = mode
    answer = await api.get("/acme/callback", query=params)
    assert (answer.status, answer.body["error"]) == (502, "provider_unavailable")
    assert words in answer.body["error_description"]


async def test_the_id_token_carries_the_nonce_sent(api: Any, oidc: FakeOAuthServer) -> None:
    await token_of(api, "acme")
    assert oidc.calls["discovery"] == 1 and oidc.calls["jwks"] == 1  # read once, cached
    await token_of(api, "acme")
    assert oidc.calls["discovery"] == 1 and oidc.calls["jwks"] == 1


async def test_a_key_rotation_is_followed(api: Any, services: Any, oidc: FakeOAuthServer) -> None:
    now = [0.0]
    services.providers["acme"].clock = lambda: now[0]
    await token_of(api, "acme")
    oidc.rotate_keys()
    now[0] += 61  # past the refetch limit
    await token_of(api, "acme")  # an unknown kid: the JWKS is read again
    assert oidc.calls["jwks"] == 2


async def test_an_unreachable_provider_is_503_and_the_others_work(api: Any) -> None:
    answer = await api.get("/down/link")
    assert (answer.status, answer.body["error"]) == (503, "provider_unavailable")
    assert (await api.get("/acme/link")).status == 200


async def test_a_misconfigured_client_authentication_is_a_502_naming_it(
    api: Any, services: Any, oidc: FakeOAuthServer
) -> None:
    params = await consent((await api.get("/acme/link")).body)
    oidc.auth_method = "client_secret_post"  # the provider expects another method
    answer = await api.get("/acme/callback", query=params)
    assert (answer.status, answer.body["error"]) == (502, "provider_unavailable")
    assert "client authentication (client_secret_basic)" in answer.body["error_description"]


def test_sections_are_checked_when_the_server_starts() -> None:
    from providers.registry import build_providers, discover_providers

    def build(section: dict[str, Any]) -> None:
        build_providers(discover_providers(), {"x": section}, public_url="http://127.0.0.1")

    with pytest.raises(ValueError, match=r"providers.x.issuer: required for type oidc"):
        build({"type": "oidc"})
    with pytest.raises(ValueError, match=r"providers.x.issuer: must be https"):
        build({"type": "oidc", "issuer": "http://id.example.com"})
    with pytest.raises(ValueError, match=r"providers.x.type: expected one of oidc, oauth2"):
        build({"type": "saml"})
    with pytest.raises(ValueError, match=r"providers.x.client_auth: expected one of"):
        build({"type": "oidc", "issuer": "https://id.example.com", "client_auth": "basic"})
    with pytest.raises(ValueError, match=r"providers.x.token_url: a URL is required"):
        build({"type": "oauth2", "authorize_url": "https://id.example.com/a"})
    with pytest.raises(ValueError, match=r"URL prefix /vk/ is declared twice"):
        build({"type": "oidc", "issuer": "https://id.example.com", "prefix": "vk"})


async def test_a_callback_naming_another_issuer_is_refused(api: Any, oidc: FakeOAuthServer) -> None:
    """RFC 9207: an answer that names another issuer is a mix-up, refused before any call."""
    params = await consent((await api.get("/acme/link")).body)
    assert params["iss"] == oidc.issuer
    answer = await api.get("/acme/callback", query={**params, "iss": "https://evil.example"})
    assert (answer.status, answer.body["error"]) == (400, "invalid_request")
    assert oidc.calls["token"] == 0
    assert (await api.get("/acme/callback", query=params)).status == 200  # state not spent
