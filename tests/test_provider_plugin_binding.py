"""The issue's case: a plugin for an OpenID-style provider written as docs/plugins.md says, whose
user info names no client (as OIDC's never does). Tokens from vhod's own exchange sign in;
any other token is refused with a description that says why."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tornado.ioloop import IOLoop

from providers import BUILTIN_PROVIDERS
from providers.base import OAuthProvider, Profile, subject_of
from providers.testing import FakeOAuthServer, consent
from server import build_services


class PlainOidcPlugin(OAuthProvider):
    name, prefix, title = "plain_oidc", "plain-oidc", "Plain OIDC"
    default_authorize_url = "https://id.example.com/authorize"
    default_token_url = "https://id.example.com/token"
    default_userinfo_url = "https://id.example.com/userinfo"
    default_scope = "openid"

    def to_profile(self, userinfo: dict[str, Any]) -> Profile:
        return Profile(provider=self.name, subject=subject_of(userinfo["sub"]))


@pytest.fixture
def fake(io_loop: IOLoop) -> Iterator[FakeOAuthServer]:
    server = FakeOAuthServer(oidc=False, introspection=False).start()
    yield server
    io_loop.run_sync(server.aclose, timeout=5)


@pytest.fixture
def config_overrides(fake: FakeOAuthServer) -> dict[str, Any]:
    return {"providers": {"plain_oidc": fake.plugin_section()}}


@pytest.fixture
def services(io_loop: IOLoop, config: Any, clock: Any) -> Iterator[Any]:
    classes = {**BUILTIN_PROVIDERS, "plain_oidc": PlainOidcPlugin}
    made = io_loop.run_sync(lambda: build_services(config, clock=clock, provider_classes=classes))
    yield made
    io_loop.run_sync(made.close)


async def test_a_token_from_our_own_exchange_signs_in(api: Any) -> None:
    params = await consent((await api.get("/plain-oidc/link")).body)
    tokens = await api.get("/plain-oidc/callback", query=params)
    assert tokens.status == 200, tokens.body
    query = {"access_token": tokens.body["access_token"]}
    registered = await api.get("/plain-oidc/registration", query=query)
    assert registered.status == 200, registered.body


@pytest.mark.parametrize("client_id", [None, "another-app"])
async def test_any_other_token_is_refused_saying_why(
    api: Any, fake: FakeOAuthServer, client_id: str | None
) -> None:
    token = fake.mint_token(client_id=client_id)  # ours or another app's: nobody can tell
    answer = await api.get("/plain-oidc/registration", query={"access_token": token})
    assert (answer.status, answer.body["error"]) == (401, "invalid_provider_token")
    assert "named no client_id in its user info" in answer.body["error_description"]
