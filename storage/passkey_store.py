"""The passkey part of the storage interface (storage/base.py's Store includes it), and the
record it stores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Passkey:
    """A WebAuthn credential (a passkey) registered to a user.

    `id` is vhod's own random id, which the API names it by; `credential_id` is the
    authenticator's (base64url), unique across the store; `public_key` the COSE key
    (base64url). `sign_count` is the authenticator's signature counter as last seen.
    `transports` are the browser's hints, not verified; `backup_eligible` is the signed
    BE flag: a synced passkey, whose key may leave the device."""

    id: str
    user_id: str
    credential_id: str
    public_key: str
    sign_count: int
    name: str
    created_at: float
    transports: tuple[str, ...] = ()
    backup_eligible: bool = False
    last_used_at: float = 0.0  # 0: never used to sign in


class PasskeyStore(Protocol):
    """Passkeys (WebAuthn credentials); Store.delete_user removes a user's too."""

    async def add_passkey(self, passkey: Passkey) -> None:
        """Store a new passkey; DuplicateError("credential_id") when any user has that
        credential id already (or "id" for the passkey's own id)."""

    async def list_passkeys(self, user_id: str) -> list[Passkey]:
        """The user's passkeys, oldest first."""

    async def find_passkey(self, credential_id: str) -> Passkey | None:
        """The passkey with this credential id, whoever's it is."""

    async def rename_passkey(self, user_id: str, passkey_id: str, name: str) -> bool:
        """Rename the user's passkey; False when the user has no passkey of that id."""

    async def delete_passkey(self, user_id: str, passkey_id: str) -> bool:
        """Remove the user's passkey; False when the user has no passkey of that id."""

    async def use_passkey(
        self, credential_id: str, old_count: int, new_count: int, now: float
    ) -> bool:
        """Record a sign-in: the counter becomes `new_count` and last used `now`, only while
        the counter is still `old_count`, atomically; False otherwise (a concurrent
        assertion used it, or it is gone), and then nothing is written."""
