"""Built-in providers that are the generic provider (providers.oidc) with other defaults:
Telegram, T-ID (T-Bank) and Sber ID. See docs/providers-telegram-tid-sber.md.

A preset is data: the defaults of the generic provider's own keys (endpoints, scope, claim
paths, client authentication, trust), plus, where the provider's protocol differs from plain
OAuth 2.0, a small subclass overriding one hook. Each preset is a built-in provider under its
own name (`providers.telegram: {client_id, client_secret}` is enough), and a section of
another name can start from one (`providers.telegram_test: {preset: telegram, ...}`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from providers.base import ProviderRequest, ProviderSettings, Setting
from providers.oidc import GENERIC_SETTINGS, GenericProvider
from providers.oidc_tokens import nonce_for
from providers.transport import FRESH_ID


class TIDProvider(GenericProvider):
    """T-ID's user info is a POST carrying the client's credentials in the form besides the
    bearer token (developer.tbank.ru, "T-ID: информация о пользователе")."""

    def build_userinfo_request(self, access_token: str) -> ProviderRequest:
        form = {"client_id": self.settings.client_id, "client_secret": self.settings.client_secret}
        headers = {"Authorization": f"Bearer {access_token}"}
        return ProviderRequest("POST", self.settings.userinfo_url, form=form, headers=headers)


class SberProvider(GenericProvider):
    """Sber ID's authorization request names the client type and requires a nonce
    (developers.sber.ru, Sber ID web authorization request)."""

    def build_authorize_params(self, state: str, code_challenge: str | None) -> dict[str, str]:
        params = super().build_authorize_params(state, code_challenge)
        params["client_type"] = "PRIVATE"
        if code_challenge:  # always, as PKCE is on: the nonce follows the challenge
            params["nonce"] = nonce_for(code_challenge)
        return params

    def __init__(self, settings: ProviderSettings, **kwargs: Any) -> None:
        # Sber ID answers no token without the client certificate from its portal: a
        # configured section without one cannot work, so it is refused at the start.
        if settings.client_id and not settings.options["tls_client_cert"]:
            raise ValueError(
                f"providers.{self.name}.tls_client_cert: Sber ID needs the client certificate "
                "(PEM) from the Sber ID portal"
            )
        super().__init__(settings, **kwargs)


@dataclass(frozen=True)
class Preset:
    name: str
    prefix: str
    title: str
    scope: str
    options: Mapping[str, Any]  # defaults of GENERIC_SETTINGS keys
    endpoints: Mapping[str, str] = field(default_factory=dict)  # type oauth2: the URLs
    base: type[GenericProvider] = GenericProvider


TELEGRAM = Preset(
    name="telegram",
    prefix="telegram",
    title="Telegram",
    scope="openid profile phone",
    options={
        "type": "oidc",
        "issuer": "https://oauth.telegram.org",
        "client_auth": "client_secret_basic",
        "client_id_in_form": True,
        # No user-info endpoint: the claims are in the id_token.
        "profile_from": "id_token",
        # Its docs show the nonce in the id_token of the JS library's flow; for the
        # redirect flow they say nothing, so a missing one is accepted (PKCE binds the code).
        "id_token_nonce": "if_present",
        # The phone scope returns the account's number, which Telegram verified.
        "phones_verified": True,
        "first_name_claim": "name",  # one display name, no given/family split
    },
)
TID = Preset(
    name="tid",
    prefix="tid",
    title="T-ID",
    scope="",  # T-ID takes no scope parameter: the data is chosen in the app's settings
    options={
        "type": "oauth2",
        "client_auth": "client_secret_basic",
        # The older id.tinkoff.ru docs describe it; on id.tbank.ru the path is assumed.
        "introspection_url": "https://id.tbank.ru/auth/introspect",
        "token_check": "introspection",
    },
    endpoints={
        "authorize_url": "https://id.tbank.ru/auth/authorize",
        "token_url": "https://id.tbank.ru/auth/token",
        "userinfo_url": "https://id.tbank.ru/userinfo/userinfo",
    },
    base=TIDProvider,
)
SBER = Preset(
    name="sber",
    prefix="sber",
    title="Sber ID",
    scope="openid name email mobile",
    options={
        "type": "oauth2",
        "client_auth": "client_secret_post",
        "token_check": "exchange_only",  # no introspection: only our own exchange's tokens
        # A fresh id per request; the token call reads `rquid`, user info `x-introspect-rquid`.
        "extra_headers": {"rquid": FRESH_ID, "x-introspect-rquid": FRESH_ID},
    },
    endpoints={
        "authorize_url": "https://online.sberbank.ru/CSAFront/oidc/authorize.do",
        "token_url": "https://oauth.sber.ru/ru/prod/tokens/v2/oidc",
        "userinfo_url": "https://oauth.sber.ru/ru/prod/sberbankid/v2.1/userinfo",
    },
    base=SberProvider,
)
PRESETS: dict[str, Preset] = {preset.name: preset for preset in (TELEGRAM, TID, SBER)}
# A built-in preset provider takes these only as the preset has them.
_FIXED = ("type", "prefix", "title", "preset")


def preset_class(
    preset: Preset, name: str | None = None, section: Mapping[str, Any] | None = None
) -> type[GenericProvider]:
    """The provider class of `preset`: the built-in one (no `name`), or that of the section
    `name` that says `preset: <name>` (its own prefix and title, default: its name)."""
    section = section or {}
    builtin = name is None
    values = {
        **preset.options,
        "preset": preset.name,
        "prefix": preset.prefix if builtin else section.get("prefix") or name,
        "title": preset.title if builtin else section.get("title") or preset.title,
    }
    settings: dict[str, Setting] = {}
    for key, setting in GENERIC_SETTINGS.items():
        if key in values:
            setting = dataclasses.replace(setting, default=values[key])
            if key in _FIXED:
                setting = dataclasses.replace(setting, choices=(str(values[key]),))
        settings[key] = setting
    for key in ("prefix", "title"):
        if not isinstance(values[key], str):
            raise ValueError(f"providers.{name}.{key}: expected str")
    attributes: dict[str, Any] = {
        "name": name or preset.name,
        "prefix": values["prefix"].strip(),
        "title": values["title"].strip(),
        "default_scope": preset.scope,
        "extra_settings": settings,
        **{f"default_{key}": url for key, url in preset.endpoints.items()},
    }
    return type(f"{preset.base.__name__}_{name or preset.name}", (preset.base,), attributes)


PRESET_PROVIDERS: dict[str, type[GenericProvider]] = {
    name: preset_class(preset) for name, preset in PRESETS.items()
}
