"""What finishes a link flow (docs/linking.md): core.domain.social calls it for a state that names
a signed-in user; core.domain.identities.Identities implements it."""

from __future__ import annotations

from typing import Any, Protocol

from core.domain.accounts import ProviderProfile
from core.domain.errors import ApiError


class Linker(Protocol):
    """What finishes a link flow (core.domain.identities.Identities implements it)."""

    async def caller_id(self, access_token: str) -> str: ...

    async def attach(self, user_id: str, profile: ProviderProfile) -> dict[str, Any]: ...


def link_needs_the_caller() -> ApiError:
    return ApiError(
        401,
        "invalid_token",
        "This flow links a provider to an account: send that account's access token.",
    )
