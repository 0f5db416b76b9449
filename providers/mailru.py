"""Mail.ru (OAuth Mail at oauth.mail.ru): https://biz.mail.ru/developer/oauth.html."""

from __future__ import annotations

from typing import Any

from providers.base import OAuthProvider, Profile, ProviderRequest, subject_of, text_or_none


class MailRuProvider(OAuthProvider):
    name = "mailru"
    prefix = "mail.ru"
    title = "Mail.ru"
    default_authorize_url = "https://oauth.mail.ru/login"
    default_token_url = "https://oauth.mail.ru/token"
    default_userinfo_url = "https://oauth.mail.ru/userinfo"
    default_scope = "userinfo"
    pkce = True  # in the newer docs; unknown parameters are ignored (RFC 6749 §3.1)
    client_auth = "basic"

    def build_userinfo_request(self, access_token: str) -> ProviderRequest:
        # The documented form is a query parameter; a header is UNCONFIRMED.
        query = {"access_token": access_token}
        return ProviderRequest("GET", self.settings.userinfo_url, query=query)

    def to_profile(self, userinfo: dict[str, Any]) -> Profile:
        return Profile(
            provider=self.name,
            subject=subject_of(userinfo["id"]),  # never the email: addresses change
            email=text_or_none(userinfo.get("email")),
            first_name=text_or_none(userinfo.get("first_name")),
            last_name=text_or_none(userinfo.get("last_name")),
            avatar=text_or_none(userinfo.get("image")),
            email_verified=False,  # Mail.ru has no such flag
        )
