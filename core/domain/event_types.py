"""The catalogue of security events: every type vhod emits, what it means, and how loud it is.

One list serves the emitters (core.domain.events.security_event takes only an EventType), the audit
log (which keeps every type listed here), the admin API's `type` filter, openapi.yaml and the
docs (tests/test_event_types.py checks each of them against this module). A type that is not
here cannot be emitted, so none can be logged and then silently not kept.

WARNING is for what an operator may want to look at (a failure, a refusal, a limit reached);
the normal course of an account (a sign-in, a change, a verification) is INFO.
"""

from __future__ import annotations

import logging
from enum import StrEnum


class EventType(StrEnum):
    # sign-in
    REGISTERED = "registered"
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    LOGIN_LOCKED = "login_locked"
    ADDRESS_LIMITED = "address_limited"
    DISABLED_SIGN_IN = "disabled_sign_in"
    REFRESH_REUSE = "refresh_reuse"
    LOGOUT = "logout"
    # providers
    PROVIDER_TOKEN_REJECTED = "provider_token_rejected"
    PROVIDER_FAULT = "provider_fault"
    PROVIDER_CODE_REJECTED = "provider_code_rejected"
    # passwords, codes, verification, sessions, deletion
    PASSWORD_RESET_REQUESTED = "password_reset_requested"
    PASSWORD_RESET_UNKNOWN = "password_reset_unknown"
    PASSWORD_RESET_NOT_SENT = "password_reset_not_sent"
    PASSWORD_RESET = "password_reset"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_CHECK_FAILED = "password_check_failed"
    EMAIL_VERIFIED = "email_verified"
    PHONE_VERIFIED = "phone_verified"
    VERIFICATION_NOT_SENT = "verification_not_sent"
    CODE_SENDS_LIMITED = "code_sends_limited"
    CODE_VOIDED = "code_voided"
    SESSION_REVOKED = "session_revoked"
    SESSIONS_REVOKED = "sessions_revoked"
    ACCOUNT_DELETED = "account_deleted"
    # sign-in by code, and growing an account made that way
    CODE_SENT = "code_sent"
    CODE_UNKNOWN = "code_unknown"
    CODE_NOT_SENT = "code_not_sent"
    CODE_DELIVERY_FAILED = "code_delivery_failed"
    CODE_LOGIN_FAILED = "code_login_failed"
    SMS_BUDGET_EXHAUSTED = "sms_budget_exhausted"
    ADDRESS_ADDED = "address_added"
    PASSWORD_SET = "password_set"
    # account linking
    IDENTITY_LINKED = "identity_linked"
    IDENTITY_UNLINKED = "identity_unlinked"
    IDENTITY_IN_USE = "identity_in_use"
    ACCOUNT_EXISTS = "account_exists"
    # passkeys
    PASSKEY_ADDED = "passkey_added"
    PASSKEY_REMOVED = "passkey_removed"
    PASSKEY_LOGIN_FAILED = "passkey_login_failed"
    PASSKEY_COUNTER_REGRESSED = "passkey_counter_regressed"
    # second factors
    MFA_REQUIRED = "mfa_required"
    MFA_FAILED = "mfa_failed"
    TOTP_ENABLED = "totp_enabled"
    TOTP_DISABLED = "totp_disabled"
    RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated"
    # operators
    ADMIN_AUTH_FAILED = "admin_auth_failed"
    ADMIN_USER_DISABLED = "admin_user_disabled"
    ADMIN_USER_ENABLED = "admin_user_enabled"
    ADMIN_SESSIONS_REVOKED = "admin_sessions_revoked"
    ADMIN_USER_DELETED = "admin_user_deleted"
    ADMIN_MFA_RESET = "admin_mfa_reset"


E = EventType
# What each type means, as the docs say it (docs/security.md lists exactly these).
MEANINGS: dict[EventType, str] = {
    E.REGISTERED: "an account was created, with a password or a provider",
    E.LOGIN_SUCCEEDED: "a sign-in succeeded (password, code or provider)",
    E.LOGIN_FAILED: "a password sign-in failed: unknown identifier or wrong password",
    E.LOGIN_LOCKED: "an account or identifier reached `limits.login_failures`",
    E.ADDRESS_LIMITED: "a client address reached `limits.per_ip_per_minute`",
    E.DISABLED_SIGN_IN: "a disabled account tried to sign in or to use a session",
    E.REFRESH_REUSE: "a retired refresh token came back: its whole family was revoked",
    E.LOGOUT: "a session ended (scope `one`) or every session of the user (`all`)",
    E.PROVIDER_TOKEN_REJECTED: "a provider token was refused (not ours, expired, rejected)",
    E.PROVIDER_FAULT: "a provider could not be reached or answered nonsense",
    E.PROVIDER_CODE_REJECTED: "a provider refused an authorization code",
    E.PASSWORD_RESET_REQUESTED: "a reset code went out to an account's address",
    E.PASSWORD_RESET_UNKNOWN: "a reset was asked for an address no account has",
    E.PASSWORD_RESET_NOT_SENT: "a reset code could not go out (the reason says why)",
    E.PASSWORD_RESET: "a password was replaced with a reset code; every session ended",
    E.PASSWORD_CHANGED: "a password was changed; every other session ended",
    E.PASSWORD_CHECK_FAILED: "a wrong current password, to change it or delete the account",
    E.EMAIL_VERIFIED: "an email address was verified with a code",
    E.PHONE_VERIFIED: "a phone number was verified with a code",
    E.VERIFICATION_NOT_SENT: "the verification code after a registration could not go out",
    E.CODE_SENDS_LIMITED: "an address or a client reached its hourly limit of codes",
    E.CODE_VOIDED: "a code was voided after too many wrong tries",
    E.SESSION_REVOKED: "a user ended one of their sessions",
    E.SESSIONS_REVOKED: "a user ended all their other sessions (`count` of them)",
    E.ACCOUNT_DELETED: "an account was deleted by its user (named by a pseudonym)",
    E.CODE_SENT: "a sign-in code went out (`channel` email or phone)",
    E.CODE_UNKNOWN: "a sign-in code was asked for an address no account has (no code sent)",
    E.CODE_NOT_SENT: "a sign-in code could not go out after its answer (the reason says why)",
    E.CODE_DELIVERY_FAILED: "a phone channel did not take a code (`outcome`, the gateway's "
    "status as `reason`); the next channel was tried",
    E.CODE_LOGIN_FAILED: "a code sign-in failed: a wrong, used, expired or voided code",
    E.SMS_BUDGET_EXHAUSTED: "`sms.daily_limit` was reached: no more text messages today",
    E.ADDRESS_ADDED: "an email or phone number, proved by a code, joined an account",
    E.PASSWORD_SET: "an account without a password got its first one",
    E.IDENTITY_LINKED: "a provider identity was linked to an account (`provider`; `method` "
    "token, browser, or verified_email when `social.link_verified_email` linked it)",
    E.IDENTITY_UNLINKED: "a provider identity was unlinked from an account (`provider`)",
    E.IDENTITY_IN_USE: "a link was refused: another account holds that provider identity",
    E.ACCOUNT_EXISTS: "a provider registration was refused: the email or phone the provider "
    "vouches for belongs to an account (`channel`)",
    E.PASSKEY_ADDED: "a passkey was registered to an account",
    E.PASSKEY_REMOVED: "a user removed one of their passkeys",
    E.PASSKEY_LOGIN_FAILED: "a passkey assertion was refused (the reason says why)",
    E.PASSKEY_COUNTER_REGRESSED: "a passkey's signature counter did not grow: a cloned "
    "authenticator or a replay; the assertion was refused",
    E.MFA_REQUIRED: "a first factor passed and a second is due (`method`: those the user has)",
    E.MFA_FAILED: "a wrong second factor (`method`: code, recovery_code or passkey)",
    E.TOTP_ENABLED: "a user confirmed a TOTP authenticator; new recovery codes were made",
    E.TOTP_DISABLED: "a user turned TOTP off, with its recovery codes",
    E.RECOVERY_CODES_REGENERATED: "a user replaced their recovery codes",
    E.ADMIN_AUTH_FAILED: "an admin request came with a missing or wrong key",
    E.ADMIN_USER_DISABLED: "an operator disabled a user, ending every session",
    E.ADMIN_USER_ENABLED: "an operator enabled a user again",
    E.ADMIN_SESSIONS_REVOKED: "an operator signed a user out everywhere",
    E.ADMIN_USER_DELETED: "an operator deleted a user (named by a pseudonym)",
    E.ADMIN_MFA_RESET: "an operator removed a user's second factors (TOTP, recovery codes)",
}

_WARNINGS = frozenset(
    {
        E.LOGIN_FAILED,
        E.LOGIN_LOCKED,
        E.ADDRESS_LIMITED,
        E.DISABLED_SIGN_IN,
        E.REFRESH_REUSE,
        E.PROVIDER_TOKEN_REJECTED,
        E.PROVIDER_FAULT,
        E.PROVIDER_CODE_REJECTED,
        E.PASSWORD_RESET_NOT_SENT,
        E.PASSWORD_CHECK_FAILED,
        E.VERIFICATION_NOT_SENT,
        E.CODE_SENDS_LIMITED,
        E.CODE_VOIDED,
        E.CODE_NOT_SENT,
        E.CODE_DELIVERY_FAILED,
        E.CODE_LOGIN_FAILED,
        E.SMS_BUDGET_EXHAUSTED,
        E.IDENTITY_IN_USE,
        E.PASSKEY_LOGIN_FAILED,
        E.PASSKEY_COUNTER_REGRESSED,
        E.MFA_FAILED,
        E.ADMIN_AUTH_FAILED,
    }
)


def level(event: EventType) -> int:
    """The log level of `event`: WARNING for what may need a look, else INFO."""
    return logging.WARNING if event in _WARNINGS else logging.INFO


# Operators' actions are each kept, however often: each needs an admin key and is a
# decision someone may have to answer for. Every other type folds its repeats (core.domain.audit).
UNFOLDED_TYPES: frozenset[str] = frozenset(
    {
        E.ADMIN_USER_DISABLED,
        E.ADMIN_USER_ENABLED,
        E.ADMIN_SESSIONS_REVOKED,
        E.ADMIN_USER_DELETED,
        E.ADMIN_MFA_RESET,
    }
)

# The types the audit log keeps: all of them.
KEPT_TYPES: frozenset[str] = frozenset(EventType)
