"""VK ID (OAuth 2.1 at id.vk.com): https://id.vk.com/about/business/go/docs/ru/vkid/latest/."""

from __future__ import annotations

from typing import Any

from providers.base import (
    OAuthProvider,
    Profile,
    ProviderRequest,
    e164_or_none,
    subject_of,
    text_or_none,
)


class VKProvider(OAuthProvider):
    name = "vk"
    prefix = "vk"
    title = "VK ID"
    default_authorize_url = "https://id.vk.com/authorize"
    default_token_url = "https://id.vk.com/oauth2/auth"
    default_userinfo_url = "https://id.vk.com/oauth2/user_info"
    default_scope = "email phone"
    pkce = True  # mandatory at VK ID
    client_auth = "none"  # a public client: client_id in the form, no secret
    callback_params = ("device_id",)  # issued with the code; the exchange fails without it
    forwarded_params = ("type", "expires_in")  # code_v2 and the code's lifetime; not ext_id

    def build_token_params(
        self, code: str, *, code_verifier: str | None, state: str, extra: dict[str, str]
    ) -> dict[str, str]:
        # VK echoes `state` in the token answer; the base compares it with this one.
        params = super().build_token_params(
            code, code_verifier=code_verifier, state=state, extra=extra
        )
        return {**params, "state": state}

    def build_userinfo_request(self, access_token: str) -> ProviderRequest:
        # Our client_id binds the call: VK answers an error for a token of another app.
        form = {"access_token": access_token, "client_id": self.settings.client_id}
        return ProviderRequest("POST", self.settings.userinfo_url, form=form)

    def token_belongs_to_us(self, userinfo: dict[str, Any]) -> bool:
        return True  # checked by VK itself, see build_userinfo_request

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
