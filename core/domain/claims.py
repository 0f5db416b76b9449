"""What an access token says of its user beyond the registered claims: its name, which
addresses are verified, and whether the session may only confirm the email."""

from __future__ import annotations

from typing import Any

from storage.base import User

# The `scope` of an access token issued while `accounts.require_verified_email` waits for
# the account's email: it confirms the address and nothing else (/validate/jwt/access
# answers false for it, and every other account route refuses its user).
VERIFY_EMAIL_SCOPE = "verify_email"
# The `scope` of an access token issued while `accounts.require_mfa` waits for the account's
# second factor: it enrols one (the /authorization/mfa routes) and nothing else.
ENROL_MFA_SCOPE = "enrol_mfa"
# Scopes of tokens that are no sign-in for other services (/validate/jwt/access: false).
RESTRICTED_SCOPES = frozenset({VERIFY_EMAIL_SCOPE, ENROL_MFA_SCOPE})


def user_name(user: User) -> str:
    """The `user_name` claim of the original tokens: email, else phone, else provider:subject."""
    if user.email:
        return user.email
    if user.phone:
        return user.phone
    if user.identities:
        first = user.identities[0]
        return f"{first.provider}:{first.subject}"
    return user.id


def awaits_email(user: User, require_verified_email: bool) -> bool:
    """Whether the setting holds the user's sessions to confirming the email (an account
    without an email, from a provider, is not held)."""
    return require_verified_email and bool(user.email) and not user.email_verified


def access_claims(user: User, require_verified_email: bool) -> dict[str, Any]:
    """The access token's word on which of the user's addresses are the user's own, and
    the verification-only scope while the email it must confirm waits."""
    claims: dict[str, Any] = {
        "email_verified": user.email_verified,
        "phone_verified": user.phone_verified,
    }
    if awaits_email(user, require_verified_email):
        claims["scope"] = VERIFY_EMAIL_SCOPE
    return claims


def enrol_only_claims(claims: dict[str, Any]) -> dict[str, Any]:
    """The claims that hold a session to enrolling a second factor; a session held to
    confirming its email stays held to that first."""
    return {} if claims.get("scope") == VERIFY_EMAIL_SCOPE else {"scope": ENROL_MFA_SCOPE}
