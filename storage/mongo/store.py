"""MongoDB store on PyMongo's async API; atomicity comes from single-document operations."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from storage.base import (
    DuplicateError,
    PartialWrite,
    RefreshToken,
    StorageUnavailable,
    User,
)
from storage.mongo.admin import MongoAdmin, create_admin_indexes
from storage.mongo.docs import (
    identity_document,
    identity_key,
    token_document,
    token_from,
    user_document,
    user_from,
)
from storage.mongo.docs import purge_at as _purge_at
from storage.mongo.errors import USER_UNIQUE_FIELDS, hinted_field, unavailable
from storage.mongo.identities import IdentitiesMixin
from storage.mongo.indexes import PoolClearedWatch, create_indexes, ensure_unique_indexes
from storage.mongo.keys import KeysMixin
from storage.mongo.lifecycle import LifecycleMixin
from storage.mongo.passkeys import PasskeysMixin
from storage.mongo.schema import migrate, recorded_version
from storage.mongo.states import OAuthStatesMixin


class MongoStore(
    OAuthStatesMixin, LifecycleMixin, MongoAdmin, KeysMixin, IdentitiesMixin, PasskeysMixin
):
    """The Store protocol on MongoDB.

    Every expiry is stored twice: as the interface's float seconds, which every query
    compares (exact, and the same on every server), and as a BSON date `purge_at` for
    the TTL indexes, which only MongoDB's TTL monitor reads.
    """

    kind = "mongodb"

    def __init__(
        self, url: str | None = None, *, database: Any = None, timeout_ms: int = 2000
    ) -> None:
        if (url is None) == (database is None):
            raise ValueError("give MongoStore either a URL or a database, not both")
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._reconnects = PoolClearedWatch()
        if url is not None:
            options = {name.lower() for name in parse_qs(urlsplit(url).query)}
            settings: dict[str, Any] = {"tz_aware": True}
            # Options written in the URL win over these defaults.
            if "serverselectiontimeoutms" not in options:
                settings["serverSelectionTimeoutMS"] = timeout_ms
            if "connecttimeoutms" not in options:
                settings["connectTimeoutMS"] = timeout_ms
            if "w" not in options:
                # Explicit, as the implicit default is w:1 on a replica set with an
                # arbiter: an acknowledged write must survive a failover.
                settings["w"] = "majority"
            settings["event_listeners"] = [self._reconnects]
            self._client = AsyncMongoClient(url, **settings)
            database = self._client.get_default_database(default="vhod")
        self.database = database
        self.users = database["users"]
        self.identities = database["identities"]
        self.refresh_tokens = database["refresh_tokens"]
        self.oauth_states = database["oauth_states"]
        self.counters = database["counters"]
        self.signing_keys = database["signing_keys"]
        self.revoked_families = database["revoked_families"]

    @property
    def owns_client(self) -> bool:
        """True when this store made its client from a URL (and so closes it)."""
        return self._client is not None

    # --- lifecycle ---

    async def setup(self) -> None:
        async def create() -> None:
            await create_indexes(self.database)
            await create_admin_indexes(self.database)

        with unavailable():
            await migrate(self.database, create)
        self._reconnects.cleared = False

    async def schema_version(self) -> int:
        with unavailable():
            return await recorded_version(self.database)

    async def close(self) -> None:
        # A database handed in belongs to whoever made its client.
        if self._client is not None:
            await self._client.close()

    async def ping(self) -> None:
        """The database answers and its unique indexes are there (re-created if they
        vanished, StorageUnavailable if they cannot be): /readyz fails rather than let
        uniqueness silently go (D17)."""
        with unavailable():
            await self.database.command("ping")
            await ensure_unique_indexes(self.database)

    async def _after_reconnect(self) -> None:
        """Before a write that relies on a unique index: check the indexes once after the
        driver lost its connections, as the server may have come back without them."""
        if self._reconnects.cleared:
            with unavailable():
                await ensure_unique_indexes(self.database)
            self._reconnects.cleared = False

    # --- users ---

    async def create_user(self, user: User, first_token: RefreshToken | None = None) -> None:
        await self._after_reconnect()
        doc = user_document(user)
        with unavailable():
            try:
                await self.users.insert_one(doc)
            except DuplicateKeyError as exc:
                raise DuplicateError(await self._user_duplicate_field(exc, doc)) from exc
        # No multi-document transaction here (nx-27017 0.8.1 and a standalone mongod have
        # none): what follows the user insert is undone when it fails, so create_user
        # leaves nothing behind, or says that it may have (PartialWrite).
        claimed: list[str] = []
        try:
            with unavailable():
                await self._claim_identities(user, claimed)
                if first_token is not None:
                    await self.refresh_tokens.insert_one(token_document(first_token))
        except Exception as exc:
            try:
                with unavailable():
                    await self._undo_user(user.id, claimed)
            except Exception as undo_failed:
                raise PartialWrite(f"user {user.id} may remain: {undo_failed}") from exc
            if isinstance(exc, DuplicateKeyError):
                field = "identity" if len(claimed) < len(user.identities) else "jti"
                raise DuplicateError(field) from exc
            raise

    async def _user_duplicate_field(self, exc: DuplicateKeyError, doc: dict[str, Any]) -> str:
        hinted = hinted_field(exc)
        if hinted is not None and (hinted == "id" or hinted in doc):
            return hinted
        # mongomock 4.3.0 reports an _id duplicate without details, and applies a unique
        # index without its partial filter (so a missing field "collides" and is named):
        # then a read after the refused write tells which field collided.
        for field in USER_UNIQUE_FIELDS:
            if field in doc and await self.users.find_one({field: doc[field]}, {"_id": 1}):
                return field
        return "id"  # neither is taken, so the refusing key was the user id

    async def _claim_identities(self, user: User, claimed: list[str]) -> None:
        """Insert one claim per identity, adding each to `claimed`; their `_id` uniqueness
        is the identity constraint."""
        for identity in user.identities:
            key = identity_key(identity.provider, identity.subject)
            await self.identities.insert_one(
                {"_id": key, **identity_document(identity), "user_id": user.id}
            )
            claimed.append(key)

    async def _undo_user(self, user_id: str, claimed: list[str]) -> None:
        if claimed:
            await self.identities.delete_many({"_id": {"$in": claimed}, "user_id": user_id})
        await self.users.delete_one({"_id": user_id})

    async def get_user(self, user_id: str) -> User | None:
        with unavailable():
            return user_from(await self.users.find_one({"_id": user_id}))

    async def find_user_by_email(self, email: str) -> User | None:
        with unavailable():
            return user_from(await self.users.find_one({"email": email}))

    async def find_user_by_phone(self, phone: str) -> User | None:
        with unavailable():
            return user_from(await self.users.find_one({"phone": phone}))

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        with unavailable():
            await self.users.update_one(
                {"_id": user_id}, {"$set": {"password_hash": password_hash}}
            )

    async def swap_password_hash(self, user_id: str, old: str, new: str) -> bool:
        with unavailable():
            swapped = await self.users.update_one(
                {"_id": user_id, "password_hash": old}, {"$set": {"password_hash": new}}
            )
        return bool(swapped.matched_count == 1)

    # --- refresh tokens ---

    async def add_refresh_token(self, token: RefreshToken) -> None:
        with unavailable():
            try:
                await self.refresh_tokens.insert_one(token_document(token))
            except DuplicateKeyError as exc:
                raise DuplicateError("jti") from exc

    async def add_password_session(self, token: RefreshToken, password_hash: str) -> bool:
        # No transaction: insert first, then look. A change writes the hash before it
        # revokes the user's tokens, so either this read sees the new hash (and the token
        # goes), or the insert came before the revocation, which then finds the token.
        await self.add_refresh_token(token)
        with unavailable():
            unchanged = await self.users.find_one(
                {"_id": token.user_id, "password_hash": password_hash}, {"_id": 1}
            )
            if unchanged is None:
                # Never handed out: remove it rather than leave a dead row.
                await self.refresh_tokens.delete_one({"_id": token.jti})
                return False
        return True

    async def _refresh_token(self, jti: str) -> RefreshToken | None:
        with unavailable():
            token = token_from(await self.refresh_tokens.find_one({"_id": jti}))
            if token is not None:
                token.revoked = await self._family_mark(token)
        return token

    async def get_refresh_token_and_user(self, jti: str) -> tuple[RefreshToken, User | None] | None:
        with unavailable():
            token = token_from(await self.refresh_tokens.find_one({"_id": jti}))
            if token is None:
                return None
            # The user and the family's revocation mark do not depend on each other: both
            # reads go out together, so a refresh waits for two round trips, not three.
            user, marked = await asyncio.gather(
                self.users.find_one({"_id": token.user_id}),
                self._family_mark(token),
            )
        token.revoked = token.revoked or marked
        return token, user_from(user)

    async def _family_mark(self, token: RefreshToken) -> bool:
        """Whether the token's family is revoked (no read when the token itself is)."""
        if token.revoked:
            return True
        return await self.revoked_families.find_one({"_id": token.family}, {"_id": 1}) is not None

    async def rotate_refresh_token(self, jti: str, successor: RefreshToken, now: float) -> bool:
        with unavailable():
            retired = await self.refresh_tokens.find_one_and_update(
                {
                    "_id": jti,
                    # Not `False`: also matches a document holding 0 and refuses one
                    # holding 1 (written by another tool; nx-27017 0.8.1 keeps booleans).
                    "revoked": {"$nin": [True, 1]},
                    "replaced_by": None,
                    "expires_at": {"$gt": now},
                },
                {"$set": {"replaced_by": successor.jti}},
                projection={"_id": 1},
            )
            if retired is None:
                return False
            try:
                await self.refresh_tokens.insert_one(token_document(successor))
            except DuplicateKeyError as exc:
                await self.refresh_tokens.update_one(
                    {"_id": jti, "replaced_by": successor.jti}, {"$set": {"replaced_by": None}}
                )
                raise DuplicateError("jti") from exc
            return True

    async def _revoke(self, query: dict[str, Any]) -> None:
        with unavailable():
            await self.refresh_tokens.update_many(query, {"$set": {"revoked": True}})

    async def revoke_refresh_token(self, jti: str) -> None:
        await self._revoke({"_id": jti})

    async def _mark_revoked(self, families: list[str], until: float, now: float) -> None:
        # Written before the tokens are updated: from here on every member reads revoked.
        # update_one with $set, not replace_one: nx-27017 0.8.1 upserts a replacement
        # under a new ObjectId instead of the filter's _id.
        # One write per family rather than a bulk_write: mongomock 4.3.0 cannot take
        # PyMongo 4.20's UpdateOne; a user has few families, and this is rare.
        # revoked_at: when it was revoked last, what the instances poll.
        record = {"$set": {"until": until, "purge_at": _purge_at(until), "revoked_at": now}}
        for family in families:
            try:
                await self.revoked_families.update_one({"_id": family}, record, upsert=True)
            except DuplicateKeyError:  # a concurrent revocation inserted it first
                await self.revoked_families.update_one({"_id": family}, record)

    async def revoke_family(self, family: str, *, until: float, now: float) -> None:
        with unavailable():
            await self._mark_revoked([family], until, now)
        await self._revoke({"family": family})

    async def revoke_user_tokens(self, user_id: str, *, until: float, now: float) -> None:
        with unavailable():
            families = await self.refresh_tokens.distinct("family", {"user_id": user_id})
            await self._mark_revoked(sorted(families), until, now)
        await self._revoke({"user_id": user_id})

    async def revoked_families_since(self, since: float) -> list[tuple[str, float]]:
        with unavailable():
            documents = await self.revoked_families.find(
                {"revoked_at": {"$gte": since}}, {"_id": 1, "revoked_at": 1}
            ).to_list(None)
        return [(doc["_id"], doc["revoked_at"]) for doc in documents]

    # --- counters ---

    async def hit_counter(self, key: str, window: float, now: float) -> tuple[int, float]:
        # Workaround for nx-27017 0.8.1, which ignores $setOnInsert and rounds a $set float
        # to 15 digits: no upsert with $setOnInsert (the idiomatic call on MongoDB) and no
        # $set of the window's end. Each step below is one single-document operation
        # that only one concurrent caller can win, so the loop converges.
        with unavailable():
            for _attempt in range(10):
                live = await self.counters.find_one_and_update(
                    {"_id": key, "ends": {"$gt": now}},
                    {"$inc": {"hits": 1}},
                    return_document=ReturnDocument.AFTER,
                )
                if live is not None:
                    return int(live["hits"]), float(live["ends"])
                await self.counters.delete_one({"_id": key, "ends": {"$lte": now}})
                ends = now + window
                try:
                    await self.counters.insert_one(
                        {"_id": key, "hits": 1, "ends": ends, "purge_at": _purge_at(ends)}
                    )
                except DuplicateKeyError:
                    continue  # another caller opened the window first: count in it
                return 1, ends
        raise StorageUnavailable(f"counter {key!r} kept changing under contention")

    async def reset_counter(self, key: str) -> None:
        with unavailable():
            await self.counters.delete_one({"_id": key})

    async def hit_counters(
        self, hits: Sequence[tuple[str, float]], now: float
    ) -> list[tuple[int, float]]:
        # Each counter is its own document; they go out together, so the wait is one
        # round trip. Not one transaction: a failure may leave some counted, which only
        # ever errs towards refusing.
        return list(
            await asyncio.gather(*(self.hit_counter(key, window, now) for key, window in hits))
        )

    async def purge_expired(self, now: float) -> None:
        with unavailable():
            await self.oauth_states.delete_many({"expires_at": {"$lte": now}})
            await self.counters.delete_many({"ends": {"$lte": now}})
            await self.refresh_tokens.delete_many({"expires_at": {"$lte": now}})
            await self.revoked_families.delete_many({"until": {"$lte": now}})
            await self.database["exchanged_tokens"].delete_many({"expires_at": {"$lte": now}})
            await self.purge_codes(now)
            await self.database["audit_events"].delete_many({"expires_at": {"$lte": now}})
            await self.database["audit_folds"].delete_many({"expires_at": {"$lte": now}})

    # --- bulk loading ---

    async def bulk_insert_users(self, users: Sequence[User]) -> None:
        if any(user.identities for user in users):
            raise ValueError("bulk_insert_users takes users without provider identities")
        if not users:
            return  # insert_many refuses an empty list
        docs = [user_document(user) for user in users]
        # Unordered: the server may apply the batch in parallel, and one duplicate does
        # not stop the rest. Durable like every write here: the client's w:majority.
        with unavailable():
            try:
                await self.users.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors") or []
                first = next((e for e in errors if e.get("code") == 11000), None)
                if first is None:
                    raise
                duplicate = DuplicateKeyError(first.get("errmsg", ""), 11000, first)
                field = await self._user_duplicate_field(duplicate, docs[first["index"]])
                raise DuplicateError(field) from exc
