"""The MongoDB store's account-lifecycle part: verified flags, sessions, deletion, codes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from storage.base import DuplicateError, OneTimeCode, RefreshToken
from storage.mongo.docs import purge_at, token_from
from storage.mongo.errors import unavailable
from storage.mongo.mfa import MfaMixin, delete_second_factors


def _code(doc: Mapping[str, Any] | None) -> OneTimeCode | None:
    if doc is None:
        return None
    return OneTimeCode(
        key=doc["_id"],
        code_hash=doc["code_hash"],
        user_id=doc["user_id"],
        expires_at=float(doc["expires_at"]),
        attempts=int(doc.get("attempts") or 0),
        created_at=float(doc.get("created_at") or 0.0),
    )


class LifecycleMixin(MfaMixin):
    """Store methods of the account lifecycle and second factors; MongoStore provides the
    collections."""

    database: Any
    users: Any
    identities: Any
    refresh_tokens: Any
    revoked_families: Any

    async def _mark_revoked(self, families: list[str], until: float, now: float) -> None: ...

    @property
    def one_time_codes(self) -> Any:
        return self.database["one_time_codes"]

    async def set_verified(self, user_id: str, field: str, value: str) -> bool:
        flag = {"email": "email_verified", "phone": "phone_verified"}[field]
        with unavailable():
            result = await self.users.update_one(
                {"_id": user_id, field: value}, {"$set": {flag: True}}
            )
        return bool(result.matched_count == 1)

    async def add_address(self, user_id: str, field: str, value: str) -> bool:
        flag = {"email": "email_verified", "phone": "phone_verified"}[field]
        with unavailable():
            try:
                result = await self.users.update_one(
                    {"_id": user_id, field: None}, {"$set": {field: value, flag: True}}
                )
            except DuplicateKeyError as exc:
                raise DuplicateError(field) from exc
        return bool(result.modified_count == 1)

    async def list_live_tokens(self, user_id: str, now: float) -> list[RefreshToken]:
        with unavailable():
            docs = await self.refresh_tokens.find(
                {
                    "user_id": user_id,
                    "revoked": {"$nin": [True, 1]},  # as rotate_refresh_token reads it
                    "replaced_by": None,
                    "expires_at": {"$gt": now},
                }
            ).to_list(None)
            families = [doc["family"] for doc in docs]
            marked = await self.revoked_families.find(
                {"_id": {"$in": families}}, {"_id": 1}
            ).to_list(None)
        revoked = {doc["_id"] for doc in marked}
        tokens = [token_from(doc) for doc in docs if doc["family"] not in revoked]
        live = [token for token in tokens if token is not None]
        return sorted(live, key=lambda token: (token.session_started, token.issued_at))

    async def touch_refresh_token(self, jti: str, now: float) -> None:
        with unavailable():
            await self.refresh_tokens.update_one({"_id": jti}, {"$set": {"last_used_at": now}})

    async def delete_user(self, user_id: str, *, until: float, now: float) -> None:
        # No multi-document transaction (nx-27017 0.8.1 and a standalone mongod have none):
        # each step is idempotent and the user document goes last, so a retry after a
        # failure part-way finishes the deletion.
        with unavailable():
            families = await self.refresh_tokens.distinct("family", {"user_id": user_id})
            await self._mark_revoked(sorted(families), until, now)
            await self.refresh_tokens.delete_many({"user_id": user_id})
            await self.one_time_codes.delete_many({"user_id": user_id})
            await self.database["passkeys"].delete_many({"user_id": user_id})
            await self.identities.delete_many({"user_id": user_id})
            await delete_second_factors(self.database, user_id)
            await self.users.delete_one({"_id": user_id})

    async def put_code(self, code: OneTimeCode) -> None:
        document = {
            "code_hash": code.code_hash,
            "user_id": code.user_id,
            "expires_at": code.expires_at,
            "attempts": code.attempts,
            "created_at": code.created_at,
            "purge_at": purge_at(code.expires_at),
        }
        # update_one with $set, not replace_one: nx-27017 0.8.1 upserts a replacement
        # under a new ObjectId instead of the filter's _id.
        with unavailable():
            await self.one_time_codes.update_one({"_id": code.key}, {"$set": document}, upsert=True)

    async def try_code(self, key: str, now: float, max_attempts: int) -> OneTimeCode | None:
        with unavailable():
            counted = await self.one_time_codes.find_one_and_update(
                {"_id": key, "expires_at": {"$gt": now}, "attempts": {"$lt": max_attempts}},
                {"$inc": {"attempts": 1}},
                return_document=ReturnDocument.AFTER,
            )
        return _code(counted)

    async def consume_code(self, key: str, code_hash: str) -> bool:
        with unavailable():
            result = await self.one_time_codes.delete_one({"_id": key, "code_hash": code_hash})
        return bool(result.deleted_count == 1)

    async def delete_code(self, key: str) -> None:
        with unavailable():
            await self.one_time_codes.delete_one({"_id": key})

    async def purge_codes(self, now: float) -> None:
        """purge_expired's part: expired one-time codes and MFA challenges."""
        await self.one_time_codes.delete_many({"expires_at": {"$lte": now}})
        await self.database["mfa_challenges"].delete_many({"expires_at": {"$lte": now}})
