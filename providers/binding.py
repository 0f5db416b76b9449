"""Who a provider token belongs to, and how our client proves who it is at the provider.

A token vhod obtained through its own code exchange is ours by construction (core.domain.social
remembers a hash of it in the store). Any other token needs the provider's own proof; a
provider declares which in `OAuthProvider.token_check`, one of TOKEN_CHECKS, and the base
class runs it: there is no hook that could return "yes" without a check.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote_plus

from core.domain.errors import ApiError
from providers.transport import ClientAuthRefused, ProviderRequest, is_bearer_token, unavailable

if TYPE_CHECKING:
    from providers.base import OAuthProvider

ClientAuth = Literal["basic", "body", "none"]
CLIENT_AUTH_METHODS: tuple[str, ...] = ("basic", "body", "none")
# Their names in OAuth 2.0 metadata (RFC 8414 token_endpoint_auth_methods_supported).
CLIENT_AUTH_NAMES = {"basic": "client_secret_basic", "body": "client_secret_post", "none": "none"}

TOKEN_CHECKS: tuple[str, ...] = (
    # the user info names the client the token was issued to (Yandex, Mail.ru's OAuth)
    "userinfo_client_id",
    # the user-info call carries our client_id and the provider answers an error for
    # another client's token (VK ID)
    "bound_userinfo_call",
    # RFC 7662 introspection says active and issued to our client_id
    "introspection",
    # no proof exists: only tokens from our own exchange are accepted
    "exchange_only",
)


def add_client_auth(
    method: str, client_id: str, secret: str, params: dict[str, str], headers: dict[str, str]
) -> None:
    """Client authentication at the token (or introspection) endpoint, RFC 6749 §2.3.1."""
    if method == "basic":
        # RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
        pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        params.pop("client_id", None)
    elif method == "body":
        params["client_id"] = client_id
        params["client_secret"] = secret
    else:  # a public client identifies itself (RFC 6749 §4.1.3) and sends no secret
        params["client_id"] = client_id
        params.pop("client_secret", None)


def foreign_token(title: str) -> ApiError:
    return ApiError(
        401,
        "invalid_provider_token",
        f"The {title} access token was issued to another application.",
    )


def unprovable_token(title: str, why: str) -> ApiError:
    return ApiError(
        401,
        "invalid_provider_token",
        f"{title} {why}, so this access token cannot be proven to be this application's; "
        "only tokens from this server's own get/token are accepted.",
    )


def require_our_client_id(title: str, value: Any, client_id: str, source: str) -> None:
    """`value` (a client_id the provider named) must be ours; absent: no proof at all."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise unprovable_token(title, f"named no client_id in its {source}")
    if not hmac.compare_digest(str(value).encode(), client_id.encode()):
        raise foreign_token(title)


async def introspect(provider: OAuthProvider, access_token: str) -> None:
    """RFC 7662: the token is active and was issued to our client_id, else 401."""
    params = {"token": access_token, "token_type_hint": "access_token"}
    headers: dict[str, str] = {}
    provider._add_client_auth(params, headers)
    call = ProviderRequest("POST", provider.introspection_url(), form=params, headers=headers)
    try:
        answer = await provider._call("token", call)
    except ClientAuthRefused as exc:
        raise unavailable(provider.title, "refused our client at introspection") from exc
    if answer.get("active") is not True:
        raise ApiError(
            401, "invalid_provider_token", f"{provider.title} says the access token is not active."
        )
    client_id = provider.settings.client_id
    require_our_client_id(provider.title, answer.get("client_id"), client_id, "introspection")


async def owners_claims(
    provider: OAuthProvider,
    access_token: str,
    *,
    exchanged: bool,
    claims: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The user info of `access_token` once `token_check`'s proof holds (none needed for a
    token of our own exchange); for a provider without user info, the claims our exchange
    kept, and nothing for any other token."""
    title, check = provider.title, provider.token_check
    if not isinstance(access_token, str) or not access_token:
        raise ApiError(400, "invalid_request", "The access_token parameter is required.")
    # RFC 6750 §2.1: anything else is no token of any provider, and would not even fit
    # into an Authorization header; refused before any hook builds a request.
    if not is_bearer_token(access_token):
        raise ApiError(401, "invalid_provider_token", f"This is not a {title} access token.")
    if not exchanged and check == "exchange_only":
        raise unprovable_token(title, "offers no proof of a token's client")
    if not exchanged and check == "introspection":
        await introspect(provider, access_token)
    if provider.profile_in_id_token:
        if not exchanged or not claims:
            raise unprovable_token(title, "has no user-info endpoint")
        return dict(claims)
    body = await provider._call("userinfo", provider.build_userinfo_request(access_token))
    if not exchanged and check == "userinfo_client_id":
        require_our_client_id(
            title, body.get("client_id"), provider.settings.client_id, "user info"
        )
    return body
