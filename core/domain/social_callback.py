"""What a provider's callback may carry on to the client: its known error codes with our own
descriptions, and the values forwarded to the front end (core.domain.social uses them)."""

from __future__ import annotations

import re
from typing import Protocol
from urllib.parse import urlencode, urlsplit, urlunsplit

_FORWARDED = re.compile(r"[\x21-\x7e]{1,4096}")  # visible ASCII (RFC 6749 VSCHAR)
# RFC 6749 §4.1.2.1 and OpenID Connect Core §3.1.2.6: the codes a provider may send back.
# The client sees one of these with our own words, never the provider's free text (D15).
CALLBACK_ERRORS = {
    "access_denied": "The user or the provider declined the sign-in.",
    "invalid_request": "The provider found the sign-in request malformed.",
    "unauthorized_client": "The provider does not let this application sign users in.",
    "unsupported_response_type": "The provider does not support this sign-in.",
    "invalid_scope": "The provider refused the requested permissions.",
    "server_error": "The provider failed to process the sign-in.",
    "temporarily_unavailable": "The provider is temporarily unable to sign users in.",
    "login_required": "The provider needs the user to sign in there first.",
    "interaction_required": "The provider needs the user to interact with it.",
    "consent_required": "The provider needs the user's consent.",
}
UNKNOWN_CALLBACK_ERROR = ("provider_error", "The provider reported an error.")


class CallbackProvider(Protocol):
    callback_params: tuple[str, ...]
    forwarded_params: tuple[str, ...]


def callback_error(error: str) -> tuple[str, str]:
    """The provider's error code if it is a known one, with our fixed description."""
    if error in CALLBACK_ERRORS:
        return error, CALLBACK_ERRORS[error]
    return UNKNOWN_CALLBACK_ERROR


def forwarded(provider: CallbackProvider, params: dict[str, str]) -> dict[str, str]:
    """What the front end gets: code, state and the provider's declared callback values,
    nothing else a URL could add (`&redirect=https://evil`)."""
    names = ("code", "state", *provider.callback_params, *provider.forwarded_params)
    return {
        name: params[name]
        for name in dict.fromkeys(names)
        if isinstance(params.get(name), str) and _FORWARDED.fullmatch(params[name])
    }


def with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
