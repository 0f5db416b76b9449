"""A testing kit for provider plugins and configured providers, shipped with vhod.

`FakeOAuthServer` is a strict fake OAuth 2.0 / OpenID Connect server on 127.0.0.1;
`consent` plays the browser at its authorization page; `sign_in` runs a provider class's
whole flow against it (authorization URL, consent, code exchange, user info):

    import asyncio
    from providers.testing import FakeOAuthServer, sign_in
    from my_plugin import MyProvider

    def test_the_whole_flow():
        async def flow():
            server = FakeOAuthServer(oidc=False, userinfo_client_id=True).start()
            try:
                return await sign_in(MyProvider, server)
            finally:
                await server.aclose()
        profile = asyncio.run(flow())
        assert profile.subject == "248289761001"

For vhod itself, `server.section()` is a `type: oidc|oauth2` config section for the server.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httputil import url_concat

from core.domain.pkce import code_challenge, new_code_verifier, new_state
from providers.base import OAuthProvider, Profile
from providers.testing.server import AUTH_METHODS, MODES, FakeOAuthServer, Refusal

__all__ = ["AUTH_METHODS", "MODES", "FakeOAuthServer", "Refusal", "consent", "sign_in"]

PUBLIC_URL = "http://127.0.0.1:8888"


async def consent(
    authorization_url: str, *, user: str | None = None, deny: bool = False
) -> dict[str, str]:
    """Play the browser at the fake's authorization URL: the callback's query parameters."""
    extra = {"user": user} if user else {}
    if deny:
        extra["deny"] = "1"
    response = await AsyncHTTPClient().fetch(
        HTTPRequest(url_concat(authorization_url, extra), follow_redirects=False),
        raise_error=False,
    )
    if response.code != 302:
        raise AssertionError(f"authorize answered {response.code}: {response.body!r}")
    return dict(parse_qsl(urlsplit(response.headers["Location"]).query))


async def sign_in(
    cls: type[OAuthProvider], server: FakeOAuthServer, *, user: str | None = None, **section: Any
) -> Profile:
    """The whole flow of a provider class against `server`, as vhod runs it: a fresh state
    and PKCE verifier, the authorization URL, consent, the code exchange (which must return
    the state sent), then the user info of the token vhod obtained itself."""
    provider = cls(cls.load_settings(server.plugin_section(**section)), public_url=PUBLIC_URL)
    state, verifier = new_state(), new_code_verifier()
    params = await consent(provider.authorization_url(state, code_challenge(verifier)), user=user)
    if params.get("state") != state or "code" not in params:
        raise AssertionError(f"the callback carried {sorted(params)}")
    tokens = await provider.exchange(
        params["code"], code_verifier=verifier, state=state, extra=params
    )
    return await provider.fetch_profile(tokens.access_token, exchanged=True)
