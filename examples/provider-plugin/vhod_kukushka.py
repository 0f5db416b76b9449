"""Kukushka ID, a fictitious OpenID-style provider: an example of a vhod provider plugin."""

from __future__ import annotations

from typing import Any

# From the installed vhod (a dependency of this package): importable anywhere.
from providers.base import OAuthProvider, Profile, e164_or_none, subject_of, text_or_none


class KukushkaProvider(OAuthProvider):
    name = "kukushka"  # the config section providers.kukushka; equals the entry point name
    prefix = "kukushka"  # routes /kukushka/link, /kukushka/callback, ...
    title = "Kukushka ID"
    default_authorize_url = "https://id.kukushka.example/oauth/authorize"
    default_token_url = "https://id.kukushka.example/oauth/token"
    default_userinfo_url = "https://id.kukushka.example/oauth/userinfo"
    default_scope = "openid profile email phone"
    pkce = True
    client_auth = "body"  # client_id and client_secret in the token form (RFC 6749 §2.3.1)
    # User info: GET with "Authorization: Bearer" (the base's default). A token that vhod's
    # own exchange did not obtain is proven ours by the client_id the user info names.
    token_check = "userinfo_client_id"

    def to_profile(self, userinfo: dict[str, Any]) -> Profile:
        return Profile(
            provider=self.name,
            subject=subject_of(userinfo["sub"]),
            email=text_or_none(userinfo.get("email")),
            phone=e164_or_none(userinfo.get("phone_number")),
            first_name=text_or_none(userinfo.get("given_name")),
            last_name=text_or_none(userinfo.get("family_name")),
            avatar=text_or_none(userinfo.get("picture")),
            email_verified=userinfo.get("email_verified") is True,
        )
