"""Yandex ID (oauth.yandex.ru, login.yandex.ru/info): https://yandex.ru/dev/id/doc/."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from providers.base import (
    OAuthProvider,
    Profile,
    ProviderRequest,
    e164_or_none,
    in_own_mailbox,
    subject_of,
    text_or_none,
)

# Yandex Mail's domains: an address there is the user's own Yandex mailbox.
OWN_MAIL_DOMAINS = ("yandex.ru", "ya.ru", "yandex.com", "yandex.by", "yandex.kz", "yandex.ua")
AVATAR_URL = "https://avatars.yandex.net/get-yapic/{}/islands-200"  # ids hold a "/"


class YandexProvider(OAuthProvider):
    name = "yandex"
    prefix = "yandex"
    title = "Yandex ID"
    default_authorize_url = "https://oauth.yandex.ru/authorize"
    default_token_url = "https://oauth.yandex.ru/token"
    default_userinfo_url = "https://login.yandex.ru/info"
    default_scope = ""  # empty: the rights set in the app's settings at Yandex
    pkce = True
    client_auth = "basic"
    setting_notes: ClassVar[dict[str, str]] = {
        "client_id": "from oauth.yandex.ru; empty: the routes answer 503",
        "client_secret": "sent with HTTP Basic authentication",
        "scope": "empty: the rights set in the app's settings at Yandex",
    }

    def build_userinfo_request(self, access_token: str) -> ProviderRequest:
        # "OAuth", not "Bearer"; the ?oauth_token= form is documented as insecure.
        return ProviderRequest(
            "GET",
            self.settings.userinfo_url,
            query={"format": "json"},
            headers={"Authorization": f"OAuth {access_token}"},
        )

    def to_profile(self, userinfo: dict[str, Any]) -> Profile:
        avatar_id = text_or_none(userinfo.get("default_avatar_id"))
        phone = userinfo.get("default_phone")
        email = text_or_none(userinfo.get("default_email"))
        return Profile(
            provider=self.name,
            subject=subject_of(userinfo["id"]),  # `login` can change
            # Only the address the user chose; `emails` is empty for social-login accounts and
            # picking one of several would be a guess.
            email=email,
            phone=e164_or_none(phone.get("number")) if isinstance(phone, dict) else None,
            first_name=text_or_none(userinfo.get("first_name")),
            last_name=text_or_none(userinfo.get("last_name")),
            avatar=(
                AVATAR_URL.format(quote(avatar_id, safe="/"))
                if avatar_id and not userinfo.get("is_avatar_empty")
                else None
            ),
            # No verified flag at Yandex; other addresses of a Yandex ID are its user's word.
            email_verified=in_own_mailbox(email, OWN_MAIL_DOMAINS),
            # Yandex ID holds only numbers confirmed by a code; default_phone is one of them.
            phone_verified=True,
        )
