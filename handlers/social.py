"""The five routes every provider gets under its prefix: link, callback, get/token,
registration and login."""

from __future__ import annotations

import re
from typing import Any

from core.domain.social import BINDING_COOKIE, Redirect
from handlers import params
from handlers.base import JsonHandler


class ProviderHandler(JsonHandler):
    address_limited = True

    def initialize(self, provider: str) -> None:  # type: ignore[override]
        super().initialize()
        self.provider = self.services.providers[provider]

    @property
    def social(self) -> Any:
        return self.services.social


class LinkHandler(ProviderHandler):
    async def get(self) -> None:
        # A browser visit (?redirect=1) can carry a cookie back; a JSON call often cannot.
        visit = self.get_query_argument("redirect", "") in ("1", "true")
        link = await self.social.link(self.provider, bind_browser=visit)
        if not visit:
            self.write_json(link.url)
            return
        cookie = link.cookie
        self.set_cookie(
            cookie.name,
            cookie.value,
            path=cookie.path,
            max_age=cookie.max_age,
            httponly=True,
            secure=cookie.secure,
            samesite="Lax",
        )
        self.redirect(link.url)


class CallbackHandler(ProviderHandler):
    async def get(self) -> None:
        result = await self.social.callback(
            self.provider, self.query_params(), cookie=self.get_cookie(BINDING_COOKIE)
        )
        if isinstance(result, Redirect):
            self.redirect(result.url)
            return
        self.write_json(result, token=True)


class GetTokenHandler(ProviderHandler):
    async def get(self) -> None:
        result = await self.social.get_token(
            self.provider,
            self.param("code"),
            state=self.param("state", required=False),
            params=self.query_params(),
            cookie=self.get_cookie(BINDING_COOKIE),
            # A link flow finishes only for the account that started it (docs/linking.md).
            access=params.bearer_token(self.header("Authorization")),
        )
        self.write_json(result, token=True)


class ProviderRegistrationHandler(ProviderHandler):
    changes_state_on_get = True

    async def get(self) -> None:
        pair = await self.social.register(self.provider, self.token_param("access_token"))
        self.write_json(pair, token=True)


class ProviderLoginHandler(ProviderHandler):
    changes_state_on_get = True

    async def get(self) -> None:
        pair = await self.social.login(self.provider, self.token_param("access_token"))
        self.write_json(pair, token=True)


def provider_routes(providers: dict[str, Any]) -> list[tuple[str, type, dict[str, str]]]:
    routes: list[tuple[str, type, dict[str, str]]] = []
    for name, provider in providers.items():
        base = "/" + re.escape(provider.prefix)
        for path, handler in (
            ("/link", LinkHandler),
            ("/callback", CallbackHandler),
            ("/get/token", GetTokenHandler),
            ("/registration", ProviderRegistrationHandler),
            ("/login", ProviderLoginHandler),
        ):
            routes.append((base + path, handler, {"provider": name}))
    return routes
