"""Mail.ru (OAuth Mail at oauth.mail.ru): https://biz.mail.ru/developer/oauth.html."""

from __future__ import annotations

from typing import Any

from providers.base import (
    OAuthProvider,
    Profile,
    ProviderRequest,
    in_own_mailbox,
    subject_of,
    text_or_none,
)

# Mail.ru's own mail domains: an address there is the mailbox the user signed in with.
OWN_MAIL_DOMAINS = ("mail.ru", "inbox.ru", "list.ru", "bk.ru", "internet.ru", "my.com")


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
