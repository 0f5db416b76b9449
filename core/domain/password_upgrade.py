"""The rehash at sign-in (PW4), written only over the hash that was checked, so that a
sign-in racing a password change never writes the old password back (issue 21, item 3)."""

from __future__ import annotations

from core.domain.passwords import Hasher
from storage.base import Store


async def upgrade_hash(
    store: Store, hasher: Hasher, user_id: str, secret: bytes, stored: str
) -> str:
    """The hash a sign-in's session rests on: `stored` (just checked against `secret`), or
    its rehash at the configured cost when that replaced it."""
    if not hasher.needs_rehash(stored):
        return stored
    upgraded = await hasher.hash(secret)
    if await store.swap_password_hash(user_id, stored, upgraded):
        return upgraded
    # Replaced meanwhile: by a concurrent sign-in's rehash of this same password (then it
    # checks out again), or by a change or reset (then the session is refused).
    current = await store.get_user(user_id)
    now = current.password_hash if current else None
    if now is not None and await hasher.verify(secret, now):
        return now
    return stored
