"""The MongoDB store's keys: token-signing keys, and hashes of provider tokens that vhod's
own code exchange obtained."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from pymongo.errors import DuplicateKeyError

from storage.base import DuplicateError, SigningKey
from storage.mongo.docs import identity_key, purge_at
from storage.mongo.errors import unavailable


class KeysMixin:
    """Store methods of the keys; MongoStore provides the database and collections."""

    database: Any
    signing_keys: Any

    # --- token-signing keys ---

    async def add_signing_key(self, key: SigningKey) -> None:
        # The generation is the _id: the one uniqueness every server enforces.
        doc = {
            "_id": key.generation,
            "kid": key.kid,
            "algorithm": key.algorithm,
            "public_key": key.public_key,
            "private_key": key.private_key,
            "activates_at": key.activates_at,
            "created_at": key.created_at,
        }
        with unavailable():
            try:
                await self.signing_keys.insert_one(doc)
            except DuplicateKeyError as exc:
                raise DuplicateError("generation") from exc

    async def list_signing_keys(self) -> list[SigningKey]:
        with unavailable():
            docs = await self.signing_keys.find({}).sort("_id", 1).to_list(None)
        return [
            SigningKey(
                kid=doc["kid"],
                generation=int(doc["_id"]),
                algorithm=doc["algorithm"],
                public_key=doc["public_key"],
                private_key=doc["private_key"],
                activates_at=float(doc["activates_at"]),
                created_at=float(doc["created_at"]),
            )
            for doc in docs
        ]

    # --- provider tokens from our own exchange ---

    async def remember_exchanged_token(
        self,
        provider: str,
        token_hash: str,
        expires_at: float,
        claims: Mapping[str, Any] | None = None,
    ) -> None:
        # Its own collection, TTL-purged like the others (storage.mongo.indexes).
        collection = self.database["exchanged_tokens"]
        with unavailable():
            doc: dict[str, Any] = {
                "_id": identity_key(provider, token_hash),
                "expires_at": expires_at,
                "purge_at": purge_at(expires_at),
            }
            if claims is not None:
                doc["claims"] = dict(claims)
            # A token is remembered once, by the exchange that obtained it; a retry keeps
            # the first expiry (no $set: see hit_counter about floats on some servers).
            with suppress(DuplicateKeyError):
                await collection.insert_one(doc)

    async def exchanged_token_claims(
        self, provider: str, token_hash: str, now: float
    ) -> dict[str, Any] | None:
        found = await self._exchanged_token(provider, token_hash, now)
        if found is None:
            return None
        claims = found.get("claims")
        return claims if isinstance(claims, dict) else {}

    async def _exchanged_token(
        self, provider: str, token_hash: str, now: float
    ) -> dict[str, Any] | None:
        query = {"_id": identity_key(provider, token_hash), "expires_at": {"$gt": now}}
        with unavailable():
            # No projection: nx-27017 0.8.1 finds nothing for find_one(query, {"_id": 1}).
            found: dict[str, Any] | None = await self.database["exchanged_tokens"].find_one(query)
        return found
