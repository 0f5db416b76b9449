"""What a provider's user info becomes, and the small mapping helpers provider modules use."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_PHONE = re.compile(r"\+?[1-9][0-9]{6,14}")
_PHONE_PUNCTUATION = re.compile(r"[\s()\-.]")


@dataclass(frozen=True)
class Profile:
    """A provider's user, mapped by `OAuthProvider.to_profile`. `subject` is the stable id."""

    provider: str
    subject: str
    email: str | None = None
    phone: str | None = None  # E.164 with the leading "+"
    first_name: str | None = None
    last_name: str | None = None
    avatar: str | None = None
    # True only where the provider vouches for the address (its own flag, or its own
    # mailbox); only then is it attached to the account and reserved (OA6).
    email_verified: bool = False
    # The same for the phone number.
    phone_verified: bool = False


def subject_of(value: Any) -> str:
    """A provider user id as a string; an int stays exact, a float is refused (never rounded)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"user id must be a string or an integer, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise ValueError("empty user id")
    return text


def text_or_none(value: Any) -> str | None:
    """A trimmed non-empty string, else None (providers omit, null or blank fields alike)."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def e164_or_none(value: Any) -> str | None:
    """A phone number in E.164 with '+' ("79991234567" → "+79991234567"); masked → None."""
    text = text_or_none(value)
    if text is None:
        return None
    digits = _PHONE_PUNCTUATION.sub("", text)
    if not _PHONE.fullmatch(digits):
        return None
    return digits if digits.startswith("+") else f"+{digits}"


def in_own_mailbox(email: str | None, domains: Iterable[str]) -> bool:
    """Whether `email` is an address at one of the provider's own mail domains (exact domain,
    case-insensitive): the provider runs that mailbox, so the address is the user's."""
    if not email or email.count("@") != 1:
        return False
    local, domain = email.rsplit("@", 1)
    return bool(local) and domain.lower().rstrip(".") in {d.lower() for d in domains}


@dataclass(frozen=True)
class ProviderTokens:
    """The provider's answer to a code exchange. Tokens are kept out of `repr` (and logs)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_in: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    # The id_token claims a provider without user info maps (`profile_in_id_token`); the
    # flow stores them with the token's hash until the token expires.
    profile_claims: dict[str, Any] | None = field(default=None, repr=False)
