"""The plugin's own tests, with the testing kit that ships with vhod (providers.testing):
they run wherever vhod and this plugin are installed, outside vhod's folder too."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from vhod_kukushka import KukushkaProvider

from core.domain.errors import ApiError
from providers.base import Profile
from providers.testing import FakeOAuthServer, sign_in


def kukushka_server() -> FakeOAuthServer:
    """Kukushka ID as its (fictitious) docs say: client_secret_post, OpenID-style user info
    with Bearer that names the token's client_id, PKCE S256 required."""
    server = FakeOAuthServer(
        oidc=False, auth_method="client_secret_post", userinfo_client_id=True, introspection=False
    )
    server.users["default"].update(
        sub="kk-0042", phone_number="+7 999 123-45-67", picture="https://kukushka.example/a.png"
    )
    return server


def run(flow: Any) -> Any:
    async def main() -> Any:
        server = kukushka_server().start()
        try:
            return await flow(server)
        finally:
            await server.aclose()

    return asyncio.run(main())


def test_the_whole_flow_makes_the_profile() -> None:
    profile = run(lambda server: sign_in(KukushkaProvider, server))
    assert profile == Profile(
        provider="kukushka",
        subject="kk-0042",
        email="ivan@example.org",
        phone="+79991234567",
        first_name="Ivan",
        last_name="Petrov",
        avatar="https://kukushka.example/a.png",
        email_verified=True,
    )


def test_a_token_of_another_application_is_refused() -> None:
    async def flow(server: FakeOAuthServer) -> None:
        provider = KukushkaProvider(
            KukushkaProvider.load_settings(server.plugin_section()),
            public_url="http://127.0.0.1:8888",
        )
        with pytest.raises(ApiError) as caught:
            await provider.fetch_profile(server.mint_token(client_id="another-app"))
        assert (caught.value.status, caught.value.code) == (401, "invalid_provider_token")

    run(flow)


def test_a_wrong_secret_is_reported_as_our_configuration() -> None:
    async def flow(server: FakeOAuthServer) -> None:
        with pytest.raises(ApiError) as caught:
            await sign_in(KukushkaProvider, server, client_secret="wrong")
        assert caught.value.status == 502
        assert "client_secret_post" in caught.value.description

    run(flow)
