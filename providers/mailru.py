"""Mail.ru, in two modes (`mode`):

- "vkid" (the default for new apps): since 1 Jul 2025 a new "sign in with Mail" is set up
  inside a VK ID app and runs through VK ID with provider=mail_ru; the identity is the VK ID
  user_id. https://id.vk.ru/about/business/go/docs/ru/vkid/latest/oauth/oauth-mail/index
- "legacy": OAuth Mail at oauth.mail.ru, for integrations connected before
  (https://biz.mail.ru/developer/oauth.html).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from providers.base import (
    ProviderRequest,
    ProviderSettings,
    Setting,
    in_own_mailbox,
    subject_of,
    text_or_none,
)
from providers.profile import Profile
from providers.vk import HOST_SETTING, VKIDProvider, vk_id_endpoints

# Mail.ru's own mail domains: an address there is the mailbox the user signed in with.
OWN_MAIL_DOMAINS = ("mail.ru", "inbox.ru", "list.ru", "bk.ru", "internet.ru", "my.com")
LEGACY_ENDPOINTS = {
    "authorize_url": "https://oauth.mail.ru/login",
    "token_url": "https://oauth.mail.ru/token",
    "userinfo_url": "https://oauth.mail.ru/userinfo",
}
MODE_SETTING = Setting(
    str,
    "vkid",
    "vkid: through VK ID with provider=mail_ru (new apps); legacy: oauth.mail.ru",
    choices=("vkid", "legacy"),
)


class MailRuProvider(VKIDProvider):
    name = "mailru"
    prefix = "mail.ru"
    title = "Mail.ru"
    vk_id_provider = "mail_ru"
    extra_settings: ClassVar[dict[str, Setting]] = {"mode": MODE_SETTING, "host": HOST_SETTING}
    setting_notes: ClassVar[dict[str, str]] = {
        "client_id": "vkid: the VK ID app's id; legacy: from oauth.mail.ru",
        "client_secret": "legacy only, sent with HTTP Basic authentication",
    }

    def __init__(self, settings: ProviderSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.legacy = settings.options["mode"] == "legacy"
        if self.legacy:
            # OAuth Mail: a confidential client (Basic), no device_id, the user info names
            # the token's client_id.
            self.client_auth = "basic"
            self.callback_params = ()
            self.forwarded_params = ()
            self.token_check = "userinfo_client_id"

    @classmethod
    def defaults_for(cls, options: Mapping[str, Any]) -> dict[str, str]:
        if options["mode"] == "legacy":
            return {**LEGACY_ENDPOINTS, "scope": "userinfo"}
        return vk_id_endpoints(options["host"])

    def build_authorize_params(self, state: str, code_challenge: str | None) -> dict[str, str]:
        params = super().build_authorize_params(state, code_challenge)
        if self.legacy:
            params.pop("provider", None)
        return params

    def build_token_params(
        self, code: str, *, code_verifier: str | None, state: str, extra: dict[str, str]
    ) -> dict[str, str]:
        params = super().build_token_params(
            code, code_verifier=code_verifier, state=state, extra=extra
        )
        if self.legacy:
            params.pop("state", None)
        return params

    def build_userinfo_request(self, access_token: str) -> ProviderRequest:
        if not self.legacy:
            return super().build_userinfo_request(access_token)
        # The documented form is a query parameter; a header is UNCONFIRMED.
        query = {"access_token": access_token}
        return ProviderRequest("GET", self.settings.userinfo_url, query=query)

    def to_profile(self, userinfo: dict[str, Any]) -> Profile:
        if not self.legacy:
            return super().to_profile(userinfo)
        email = text_or_none(userinfo.get("email"))
        return Profile(
            provider=self.name,
            subject=subject_of(userinfo["id"]),  # never the email: addresses change
            email=email,
            first_name=text_or_none(userinfo.get("first_name")),
            last_name=text_or_none(userinfo.get("last_name")),
            avatar=text_or_none(userinfo.get("image")),
            # No verified flag at Mail.ru; only its own mailboxes are vouched for.
            email_verified=in_own_mailbox(email, OWN_MAIL_DOMAINS),
        )
