"""A user's sessions as the user sees them: the live ones listed, one or all others ended.
A base of core.domain.lifecycle.Lifecycle, which sets the store and the clock."""

from __future__ import annotations

from typing import Any

from core.domain.errors import ApiError
from core.domain.event_types import EventType
from core.domain.events import security_event
from core.domain.sessions import session_view
from core.infra.clock import Clock
from storage.base import Store


def session_not_found() -> ApiError:
    return ApiError(404, "session_not_found", "The user has no live session with this id.")


class UserSessions:
    store: Store
    clock: Clock

    def _horizon(self) -> float:
        raise NotImplementedError  # Lifecycle's

    async def _live_families(self, user_id: str) -> list[str]:
        return [t.family for t in await self.store.list_live_tokens(user_id, self.clock())]

    # sessions

    async def list_sessions(self, user_id: str, current: str | None = None) -> list[dict[str, Any]]:
        """The user's live sessions, oldest first; `current` marks the caller's."""
        tokens = await self.store.list_live_tokens(user_id, self.clock())
        return [session_view(token, current) for token in tokens]

    async def revoke_session(self, user_id: str, session: str) -> None:
        """End one live session of the user; 404 session_not_found for any other id."""
        if session not in await self._live_families(user_id):
            raise session_not_found()
        await self.store.revoke_family(session, until=self._horizon(), now=self.clock())
        security_event(EventType.SESSION_REVOKED, user=user_id)

    async def revoke_other_sessions(self, user_id: str, keep: str | None) -> int:
        """End every live session of the user but `keep`; how many ended."""
        ended = [f for f in await self._live_families(user_id) if f != keep]
        for family in ended:
            await self.store.revoke_family(family, until=self._horizon(), now=self.clock())
        security_event(EventType.SESSIONS_REVOKED, user=user_id, count=len(ended))
        return len(ended)
