"""The part of the Store protocol (storage.base.Store) that remembers the provider tokens vhod
obtained itself, through its own code exchange."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class ExchangedTokens(Protocol):
    async def remember_exchanged_token(
        self,
        provider: str,
        token_hash: str,
        expires_at: float,
        claims: Mapping[str, Any] | None = None,
    ) -> None:
        """Remember (a hash of) a provider access token this server's exchange obtained,
        until `expires_at`; every instance on the same store then knows it is ours. A
        hash remembered already keeps its first expiry; purge_expired removes expired ones.
        `claims`: the user's id_token claims, for a provider without user info (Telegram),
        a small JSON object kept as long as the hash."""

    async def exchanged_token_claims(
        self, provider: str, token_hash: str, now: float
    ) -> dict[str, Any] | None:
        """The claims remembered with this live hash for `provider` ({} when it was kept
        without any); None when the hash is unknown, another provider's or expired: one
        query for "is it ours, and who is it"."""
