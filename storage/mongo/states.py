"""The MongoDB store's OAuth states: single-use, bound to one provider, short-lived."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.errors import DuplicateKeyError

from storage.base import DuplicateError, OAuthState
from storage.mongo.docs import purge_at
from storage.mongo.errors import unavailable


def _state(doc: Mapping[str, Any] | None) -> OAuthState | None:
    if doc is None:
        return None
    return OAuthState(
        state=doc["_id"],
        provider=doc["provider"],
        expires_at=float(doc["expires_at"]),
        code_verifier=doc.get("code_verifier"),
        code_hash=doc.get("code_hash"),
        binding_hash=doc.get("binding_hash"),
        link_user=doc.get("link_user"),
    )


class OAuthStatesMixin:
    """Store methods of the OAuth states; MongoStore provides the collection."""

    oauth_states: Any

    async def put_state(self, state: OAuthState) -> None:
        doc: dict[str, Any] = {
            "_id": state.state,
            "provider": state.provider,
            "expires_at": state.expires_at,
            "code_verifier": state.code_verifier,
            "binding_hash": state.binding_hash,
            "purge_at": purge_at(state.expires_at),
        }
        if state.code_hash is not None:
            doc["code_hash"] = state.code_hash
        if state.link_user is not None:
            doc["link_user"] = state.link_user
        with unavailable():
            try:
                await self.oauth_states.insert_one(doc)
            except DuplicateKeyError as exc:
                raise DuplicateError("state") from exc

    async def attach_code(self, state: str, provider: str, code_hash: str, now: float) -> bool:
        # The first code only: `code_hash` is absent until a callback attaches one.
        query = {"_id": state, "provider": provider, "expires_at": {"$gt": now}}
        with unavailable():
            result = await self.oauth_states.update_one(
                {**query, "code_hash": {"$exists": False}}, {"$set": {"code_hash": code_hash}}
            )
        return bool(result.matched_count == 1)

    async def find_state(self, provider: str, state: str, now: float) -> OAuthState | None:
        return await self._find_state(
            {"_id": state, "provider": provider, "expires_at": {"$gt": now}}
        )

    async def find_state_by_code(
        self, provider: str, code_hash: str, now: float
    ) -> OAuthState | None:
        query = {"code_hash": code_hash, "provider": provider, "expires_at": {"$gt": now}}
        return await self._find_state(query)

    async def _find_state(self, query: dict[str, Any]) -> OAuthState | None:
        with unavailable():
            return _state(await self.oauth_states.find_one(query))

    async def consume_state(self, provider: str, state: str) -> bool:
        with unavailable():
            result = await self.oauth_states.delete_one({"_id": state, "provider": provider})
        return bool(result.deleted_count == 1)
