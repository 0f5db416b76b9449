"""The rules of core.domain.passkeys that need no WebAuthn library: its errors, what the API shows
of a passkey, a passkey's name, and whether an account has another way in."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from core.domain.errors import ApiError, invalid_request
from storage.base import Passkey, User

MAX_PASSKEYS = 20  # per account: what a client registers is bounded
MAX_NAME_CHARS = 64
DEFAULT_NAME = "Passkey"


def invalid_credential() -> ApiError:
    return ApiError(
        400, "invalid_credential", "The passkey response is not a valid WebAuthn credential."
    )


def invalid_challenge() -> ApiError:
    return ApiError(
        400,
        "invalid_challenge",
        "The passkey challenge is unknown, used or expired: ask for new options.",
    )


def unknown_passkey() -> ApiError:
    return ApiError(401, "unknown_passkey", "No account has this passkey.")


def passkey_rejected() -> ApiError:
    return ApiError(401, "passkey_rejected", "The passkey's response could not be verified.")


def passkey_not_found() -> ApiError:
    return ApiError(404, "passkey_not_found", "The account has no passkey with this id.")


def passkey_exists() -> ApiError:
    return ApiError(409, "passkey_exists", "This passkey is registered already.")


def too_many_passkeys() -> ApiError:
    return ApiError(
        409,
        "too_many_passkeys",
        f"An account holds at most {MAX_PASSKEYS} passkeys: remove one first.",
    )


def last_sign_in_method() -> ApiError:
    return ApiError(
        409,
        "last_sign_in_method",
        "This passkey is the account's last way to sign in: add another one first.",
    )


def has_password_or_identity(user: User) -> bool:
    return user.password_hash is not None or bool(user.identities)


def other_ways_in(code_channels: Iterable[str]) -> Callable[[User], bool]:
    """Whether a user can sign in without a passkey: a password, a provider identity, or a
    verified address that sign-in by code sends codes to (`code_channels`)."""
    channels = frozenset(code_channels)

    def check(user: User) -> bool:
        return (
            has_password_or_identity(user)
            or ("phone" in channels and user.phone is not None and user.phone_verified)
            or ("email" in channels and user.email is not None and user.email_verified)
        )

    return check


def passkey_view(passkey: Passkey) -> dict[str, Any]:
    """What the API shows of a passkey."""
    return {
        "id": passkey.id,
        "name": passkey.name,
        "created": int(passkey.created_at),
        "last_used": int(passkey.last_used_at) if passkey.last_used_at else None,
        "transports": list(passkey.transports),
        "synced": passkey.backup_eligible,
    }


def passkey_name(name: str | None) -> str:
    if name is None or not name.strip():
        return DEFAULT_NAME
    name = " ".join(name.split())
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise invalid_request(f"name: at most {MAX_NAME_CHARS} printable characters")
    return name
