"""VK ID (OAuth 2.1 at id.vk.ru) and the sign-ins that run through it (OK.ru here, Mail.ru in
providers.mailru): https://id.vk.ru/about/business/go/docs/ru/vkid/latest/.

VK moved sign-in from *.vk.com to *.vk.ru (deadline 30 Sep 2025; its SDKs default to vk.ru);
`host` picks the host, and the old one still works when configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from providers.base import (
    ClientAuth,
    OAuthProvider,
    Profile,
    ProviderRequest,
    Setting,
    e164_or_none,
    subject_of,
    text_or_none,
)

VK_ID_HOST = "id.vk.ru"
HOST_SETTING = Setting(str, VK_ID_HOST, "VK ID's host (id.vk.com is the pre-2025 one)")


def vk_id_endpoints(host: str) -> dict[str, str]:
    return {
        "authorize_url": f"https://{host}/authorize",
        "token_url": f"https://{host}/oauth2/auth",
        "userinfo_url": f"https://{host}/oauth2/user_info",
    }


class VKIDProvider(OAuthProvider):
    """The VK ID protocol: PKCE, a public client, device_id, a user-info call bound to our
    client_id. A subclass names the sign-in VK ID shows with `vk_id_provider`."""

    # VK ID's `provider` parameter: vkid (its default), ok_ru or mail_ru.
    vk_id_provider: ClassVar[str | None] = None
    default_authorize_url = vk_id_endpoints(VK_ID_HOST)["authorize_url"]
    default_token_url = vk_id_endpoints(VK_ID_HOST)["token_url"]
    default_userinfo_url = vk_id_endpoints(VK_ID_HOST)["userinfo_url"]
    default_scope = "email phone"
    pkce = True  # mandatory at VK ID
    client_auth: ClientAuth = "none"  # a public client: client_id in the form, no secret
    # Issued with the code; the exchange fails without it.
    callback_params: tuple[str, ...] = ("device_id",)
    # code_v2 and the code's lifetime; not ext_id.
    forwarded_params: tuple[str, ...] = ("type", "expires_in")
    # Our client_id binds the user-info call: VK answers an error for another app's token.
    token_check = "bound_userinfo_call"
    extra_settings: ClassVar[dict[str, Setting]] = {"host": HOST_SETTING}

    @classmethod
    def defaults_for(cls, options: Mapping[str, Any]) -> dict[str, str]:
        return vk_id_endpoints(options["host"])

    def build_authorize_params(self, state: str, code_challenge: str | None) -> dict[str, str]:
        params = super().build_authorize_params(state, code_challenge)
        if self.vk_id_provider:
            params["provider"] = self.vk_id_provider
        return params

    def build_token_params(
        self, code: str, *, code_verifier: str | None, state: str, extra: dict[str, str]
    ) -> dict[str, str]:
        # VK echoes `state` in the token answer; the base compares it with this one.
        params = super().build_token_params(
            code, code_verifier=code_verifier, state=state, extra=extra
        )
        return {**params, "state": state}

    def build_userinfo_request(self, access_token: str) -> ProviderRequest:
        form = {"access_token": access_token, "client_id": self.settings.client_id}
        return ProviderRequest("POST", self.settings.userinfo_url, form=form)

    def to_profile(self, userinfo: dict[str, Any]) -> Profile:
        user = userinfo["user"]
        return Profile(
            provider=self.name,
            subject=subject_of(user["user_id"]),  # a string here, an int64 in the token answer
            email=text_or_none(user.get("email")),
            phone=e164_or_none(user.get("phone")),  # sent without "+"
            first_name=text_or_none(user.get("first_name")),
            last_name=text_or_none(user.get("last_name")),
            avatar=text_or_none(user.get("avatar")),
            email_verified=False,  # `verified` is about the person, not the address
            # A VK ID account signs in by its phone number, confirmed by a one-time code.
            phone_verified=True,
        )


class VKProvider(VKIDProvider):
    name = "vk"
    prefix = "vk"
    title = "VK ID"
    setting_notes: ClassVar[dict[str, str]] = {
        "client_id": "the app's id from id.vk.ru; empty: the routes answer 503",
        "client_secret": "not sent: VK ID authenticates the client with PKCE",
        "scope": "space-separated VK ID scopes",
    }


class OKProvider(VKIDProvider):
    """OK.ru through VK ID (set up in the VK ID app's additional sign-in methods)."""

    name = "ok"
    prefix = "ok"
    title = "OK.ru"
    vk_id_provider = "ok_ru"
    setting_notes: ClassVar[dict[str, str]] = {
        "client_id": "the VK ID app's id (OK enabled in its sign-in methods)",
        "client_secret": "not sent: VK ID authenticates the client with PKCE",
    }
