"""Every error code vhod can answer, once: its HTTP statuses and what it means.

tests/test_error_catalogue.py holds the code to it (every `ApiError` raised in the source,
the codes of the statuses Tornado raises, the provider callback errors passed on) and the
OpenAPI document (every error enum), and keeps docs/errors.md equal to `markdown()`:
`python -m core.domain.error_catalogue > docs/errors.md` writes it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorCode:
    code: str
    statuses: tuple[int, ...]
    meaning: str


def _codes(*rows: tuple[str, tuple[int, ...], str]) -> dict[str, ErrorCode]:
    return {code: ErrorCode(code, statuses, meaning) for code, statuses, meaning in rows}


CATALOGUE: dict[str, ErrorCode] = _codes(
    # Requests
    ("invalid_request", (400,), "A parameter is missing, malformed, too long or of a wrong type."),
    ("payload_too_large", (413,), "The body is over `server.max_body_bytes`."),
    ("not_found", (404,), "No such route or resource."),
    ("method_not_allowed", (405,), "The route does not take this HTTP method."),
    ("unauthorized", (401,), "Tornado refused the request as unauthenticated."),
    ("forbidden", (403,), "Tornado refused the request (for example a bad XSRF check)."),
    (
        "origin_not_allowed",
        (403,),
        "A browser request came from an origin not listed in `server.cors_origins`.",
    ),
    (
        "rate_limited",
        (429,),
        "Too many requests from this client or for this identifier; "
        "`Retry-After` says when to retry.",
    ),
    ("overloaded", (503,), "The password-hashing queue is full; retry shortly."),
    (
        "server_error",
        (400, 500),
        "500: the server failed; the log has one line for it, without "
        "secrets. 400: the provider failed to process the sign-in.",
    ),
    ("storage_unavailable", (503,), "The database cannot be reached; nothing was changed."),
    # Accounts and passwords
    ("invalid_email", (400,), "The email address is not a deliverable address."),
    ("invalid_phone_number", (400,), "The phone number is not a valid number."),
    ("region_not_allowed", (400,), "Codes are not sent to this phone number's country."),
    ("weak_password", (400,), "The password is shorter than `passwords.min_length` or too common."),
    ("user_exists", (409,), "An account already has this email or phone number."),
    ("address_exists", (409,), "Another account already has this address."),
    ("password_exists", (409,), "The account already has a password."),
    (
        "invalid_credentials",
        (401,),
        "The identifier or the password is wrong (one answer for both).",
    ),
    ("invalid_token", (401,), "The token is invalid, expired, of the wrong kind or revoked."),
    ("account_disabled", (403,), "An operator disabled the account."),
    (
        "unverified_email",
        (403,),
        "`accounts.require_verified_email` is on and the email is not verified yet.",
    ),
    ("user_not_found", (404,), "No account for this identifier or provider identity."),
    ("session_not_found", (404,), "No live session of this user has that id."),
    # One-time codes and their delivery
    ("invalid_code", (400,), "The code is wrong, expired, used or void after too many tries."),
    ("captcha_required", (400,), "The captcha token is missing or was not accepted."),
    ("delivery_not_configured", (503,), "No email or SMS channel is configured for this address."),
    ("delivery_budget_exhausted", (503,), "The daily budget of SMS messages is spent."),
    ("delivery_failed", (502,), "Every configured channel failed to deliver the code."),
    # Social sign-in
    (
        "invalid_provider_token",
        (401,),
        "The provider token was not issued to this application, or the provider refused it.",
    ),
    (
        "invalid_state",
        (400,),
        "The sign-in state is unknown, expired, used, or was started in another browser.",
    ),
    ("invalid_grant", (400,), "The provider refused the authorization code."),
    (
        "provider_unavailable",
        (502, 503),
        "The provider did not answer, or answered something unusable.",
    ),
    ("provider_not_configured", (503,), "The provider has no client id or secret configured."),
    (
        "provider_error",
        (400,),
        "The provider sent the browser back with an error vhod does not know.",
    ),
    ("access_denied", (400,), "The user or the provider declined the sign-in."),
    ("unauthorized_client", (400,), "The provider does not let this application sign users in."),
    ("unsupported_response_type", (400,), "The provider does not support this sign-in."),
    ("invalid_scope", (400,), "The provider refused the requested permissions."),
    ("temporarily_unavailable", (400,), "The provider is temporarily unable to sign users in."),
    ("login_required", (400,), "The provider needs the user to sign in there first."),
    ("interaction_required", (400,), "The provider needs the user to interact with it."),
    ("consent_required", (400,), "The provider needs the user's consent."),
    # Linking ways in (docs/linking.md)
    (
        "account_exists",
        (409,),
        "An account holds the email or phone the provider vouches for: sign in to it and "
        "link the provider; `methods` says how it signs in.",
    ),
    ("identity_in_use", (409,), "That provider identity is linked to another account."),
    ("provider_already_linked", (409,), "The account already has an identity at that provider."),
    ("identity_not_found", (404,), "The account has no identity at that provider."),
    (
        "last_sign_in_method",
        (409,),
        "Removing it (a provider identity or a passkey) would leave the account no way to sign in.",
    ),
    # Second factors (docs/second-factors.md)
    (
        "invalid_mfa_token",
        (401,),
        "The mfa_token is unknown, used, expired or out of tries: sign in again.",
    ),
    (
        "mfa_required_enrolment",
        (403,),
        "`accounts.require_mfa` is on and the account has no second factor yet: this session "
        "may only enrol one.",
    ),
    ("totp_enabled", (409,), "The account has an authenticator app already."),
    ("totp_not_enabled", (409,), "The account has no authenticator app."),
    ("totp_not_set_up", (409,), "No authenticator app set-up is waiting for its first code."),
    # Passkeys (docs/passkeys.md)
    ("invalid_credential", (400,), "Not a WebAuthn credential, or one that does not verify."),
    (
        "invalid_challenge",
        (400,),
        "The passkey challenge is unknown, used, expired or another user's: ask for new options.",
    ),
    ("unknown_passkey", (401,), "No account has this passkey."),
    (
        "passkey_rejected",
        (401,),
        "The passkey's answer does not verify (origin, relying party, signature, user handle "
        "or a counter that did not grow).",
    ),
    ("passkey_not_found", (404,), "The account has no passkey with that id."),
    ("passkey_exists", (409,), "This credential is registered already."),
    ("too_many_passkeys", (409,), "The account holds the most passkeys it may (20)."),
    # Operators
    ("invalid_admin_key", (401,), "The admin key is missing, unknown or revoked."),
    ("invalid_cursor", (400,), "The page cursor was not made by this deployment, or is malformed."),
)


def markdown() -> str:
    """docs/errors.md: the catalogue as a table."""
    lines = [
        "# Error codes",
        "",
        "<!-- Generated by `python -m core.domain.error_catalogue > docs/errors.md`; "
        "tests/test_error_catalogue.py fails when it drifts. -->",
        "",
        'Every error is a JSON object `{"error": "<code>", "error_description": '
        '"<sentence>"}`. These are all the codes vhod answers; each operation in the '
        "OpenAPI document lists the ones it can answer.",
        "",
        "| code | HTTP status | meaning |",
        "|---|---|---|",
    ]
    for entry in sorted(CATALOGUE.values(), key=lambda e: (e.statuses, e.code)):
        statuses = ", ".join(str(status) for status in entry.statuses)
        lines.append(f"| `{entry.code}` | {statuses} | {entry.meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
