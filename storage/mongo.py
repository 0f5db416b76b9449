"""MongoDB store on PyMongo's async API; atomicity comes from single-document operations."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pymongo import AsyncMongoClient, ReturnDocument, WriteConcern
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError

from storage.base import (
    DuplicateError,
    Identity,
    OAuthState,
    RefreshToken,
    SigningKey,
    StorageUnavailable,
    User,
)

# Index names as MongoDB reports them ("index: email_unique dup key: ...") and as servers
# that name indexes themselves do ("UNIQUE constraint failed: index 'idx_users_email'").
_INDEX_NAME = re.compile(r"index:?\s*'?([\w.$-]+)")
_USER_UNIQUE_FIELDS = ("email", "phone")


@contextmanager
def _unavailable() -> Iterator[None]:
    # ConnectionFailure covers AutoReconnect, NetworkTimeout and ServerSelectionTimeoutError.
    try:
        yield
    except ConnectionFailure as exc:
        raise StorageUnavailable(str(exc)) from exc


def _purge_at(seconds: float) -> datetime:
    """The BSON date a TTL index expires a document at; only the TTL monitor reads it."""
    return datetime.fromtimestamp(seconds, UTC)


def identity_key(provider: str, subject: str) -> str:
    """The `_id` of an identity claim; escaping keeps ("a:b", "c") apart from ("a", "b:c")."""
    return provider.replace("%", "%25").replace(":", "%3A") + ":" + subject


def _hinted_field(exc: DuplicateKeyError) -> str | None:
    details = exc.details or {}
    key_pattern = details.get("keyPattern") or {}
    for key in key_pattern:
        if key in _USER_UNIQUE_FIELDS:
            return key
        if key == "_id":
            return "id"
    match = _INDEX_NAME.search(str(details.get("errmsg") or exc))
    if match is None:
        return None
    name = match.group(1).removeprefix("idx_users_").removesuffix("_unique")
    return {"email": "email", "phone": "phone", "_id_": "id"}.get(name)


def user_document(user: User) -> dict[str, Any]:
    """The document `create_user` writes for `user` (also used to bulk-load users)."""
    doc: dict[str, Any] = {
        "_id": user.id,
        "password_hash": user.password_hash,
        "identities": [{"provider": i.provider, "subject": i.subject} for i in user.identities],
        "profile": dict(user.profile),
        "created_at": user.created_at,
    }
    # Absent rather than null, so the partial unique indexes leave them out.
    if user.email is not None:
        doc["email"] = user.email
    if user.phone is not None:
        doc["phone"] = user.phone
    return doc


def _user(doc: Mapping[str, Any] | None) -> User | None:
    if doc is None:
        return None
    return User(
        id=doc["_id"],
        email=doc.get("email"),
        phone=doc.get("phone"),
        password_hash=doc.get("password_hash"),
        identities=[Identity(i["provider"], i["subject"]) for i in doc.get("identities") or []],
        profile=dict(doc.get("profile") or {}),
        created_at=float(doc.get("created_at") or 0.0),
    )


def _token_doc(token: RefreshToken) -> dict[str, Any]:
    return {
        "_id": token.jti,
        "user_id": token.user_id,
        "family": token.family,
        "expires_at": token.expires_at,
        "issued_at": token.issued_at,
        "revoked": bool(token.revoked),
        "replaced_by": token.replaced_by,
        "purge_at": _purge_at(token.expires_at),
    }


def _token(doc: Mapping[str, Any] | None) -> RefreshToken | None:
    if doc is None:
        return None
    return RefreshToken(
        jti=doc["_id"],
        user_id=doc["user_id"],
        family=doc["family"],
        expires_at=float(doc["expires_at"]),
        issued_at=float(doc.get("issued_at") or 0.0),
        # Some servers hand booleans back as 0/1.
        revoked=bool(doc.get("revoked")),
        replaced_by=doc.get("replaced_by"),
    )


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
    )


class MongoStore:
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
        if url is not None:
            options = {name.lower() for name in parse_qs(urlsplit(url).query)}
            settings: dict[str, Any] = {"tz_aware": True}
            # Options written in the URL win over these defaults.
            if "serverselectiontimeoutms" not in options:
                settings["serverSelectionTimeoutMS"] = timeout_ms
            if "connecttimeoutms" not in options:
                settings["connectTimeoutMS"] = timeout_ms
            self._client = AsyncMongoClient(url, **settings)
            database = self._client.get_default_database(default="vhod")
        self.database = database
        self.users = database["users"]
        self.identities = database["identities"]
        self.refresh_tokens = database["refresh_tokens"]
        self.oauth_states = database["oauth_states"]
        self.counters = database["counters"]
        self.signing_keys = database["signing_keys"]

    @property
    def owns_client(self) -> bool:
        """True when this store made its client from a URL (and so closes it)."""
        return self._client is not None

    # --- lifecycle ---

    async def setup(self) -> None:
        with _unavailable():
            for field in _USER_UNIQUE_FIELDS:
                await self.users.create_index(
                    field,
                    name=f"{field}_unique",
                    unique=True,
                    partialFilterExpression={field: {"$type": "string"}},
                )
            await self.refresh_tokens.create_index("user_id", name="user_id")
            await self.refresh_tokens.create_index("family", name="family")
            await self.oauth_states.create_index(
                "code_hash",
                name="code_hash",
                partialFilterExpression={"code_hash": {"$type": "string"}},
            )
            for collection in (self.refresh_tokens, self.oauth_states, self.counters):
                await collection.create_index("purge_at", name="purge_at_ttl", expireAfterSeconds=0)

    async def close(self) -> None:
        # A database handed in belongs to whoever made its client.
        if self._client is not None:
            await self._client.close()

    async def ping(self) -> None:
        with _unavailable():
            await self.database.command("ping")

    # --- users ---

    async def create_user(self, user: User) -> None:
        doc = user_document(user)
        with _unavailable():
            try:
                await self.users.insert_one(doc)
            except DuplicateKeyError as exc:
                raise DuplicateError(await self._user_duplicate_field(exc, doc)) from exc
            await self._claim_identities(user)

    async def _user_duplicate_field(self, exc: DuplicateKeyError, doc: dict[str, Any]) -> str:
        hinted = _hinted_field(exc)
        present = [field for field in _USER_UNIQUE_FIELDS if field in doc]
        if hinted == "id" or (present and hinted == present[0]):
            return hinted
        # The hint is missing, names the later field, or is wrong (mongomock-motor reports
        # keyPattern without its partial filter): reading after the refused write finds
        # the first field that collided.
        for field in present:
            if await self.users.find_one({field: doc[field]}, {"_id": 1}) is not None:
                return field
        return "id"  # neither is taken, so the refusing key was the user id

    async def _claim_identities(self, user: User) -> None:
        """Insert one claim per identity; their `_id` uniqueness is the identity constraint.

        Run after the user insert, so a refused claim undoes the claims made so far and
        the user, and the whole create_user leaves nothing behind.
        """
        claimed: list[str] = []
        try:
            for identity in user.identities:
                key = identity_key(identity.provider, identity.subject)
                await self.identities.insert_one(
                    {
                        "_id": key,
                        "provider": identity.provider,
                        "subject": identity.subject,
                        "user_id": user.id,
                    }
                )
                claimed.append(key)
        except DuplicateKeyError as exc:
            await self._undo_user(user.id, claimed)
            raise DuplicateError("identity") from exc
        except ConnectionFailure:
            # If the server is gone the undo fails too; the caller sees StorageUnavailable.
            with suppress(ConnectionFailure):
                await self._undo_user(user.id, claimed)
            raise

    async def _undo_user(self, user_id: str, claimed: list[str]) -> None:
        if claimed:
            await self.identities.delete_many({"_id": {"$in": claimed}, "user_id": user_id})
        await self.users.delete_one({"_id": user_id})

    async def get_user(self, user_id: str) -> User | None:
        with _unavailable():
            return _user(await self.users.find_one({"_id": user_id}))

    async def find_user_by_email(self, email: str) -> User | None:
        with _unavailable():
            return _user(await self.users.find_one({"email": email}))

    async def find_user_by_phone(self, phone: str) -> User | None:
        with _unavailable():
            return _user(await self.users.find_one({"phone": phone}))

    async def find_user_by_identity(self, provider: str, subject: str) -> User | None:
        with _unavailable():
            claim = await self.identities.find_one({"_id": identity_key(provider, subject)})
            if claim is None:
                return None
            return _user(await self.users.find_one({"_id": claim["user_id"]}))

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        with _unavailable():
            await self.users.update_one(
                {"_id": user_id}, {"$set": {"password_hash": password_hash}}
            )

    # --- refresh tokens ---

    async def add_refresh_token(self, token: RefreshToken) -> None:
        with _unavailable():
            try:
                await self.refresh_tokens.insert_one(_token_doc(token))
            except DuplicateKeyError as exc:
                raise DuplicateError("jti") from exc

    async def get_refresh_token(self, jti: str) -> RefreshToken | None:
        with _unavailable():
            return _token(await self.refresh_tokens.find_one({"_id": jti}))

    async def rotate_refresh_token(self, jti: str, successor: RefreshToken, now: float) -> bool:
        with _unavailable():
            retired = await self.refresh_tokens.find_one_and_update(
                {
                    "_id": jti,
                    # Not `False`: also matches a server's stored 0, and refuses its 1.
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
                await self.refresh_tokens.insert_one(_token_doc(successor))
            except DuplicateKeyError as exc:
                await self.refresh_tokens.update_one(
                    {"_id": jti, "replaced_by": successor.jti}, {"$set": {"replaced_by": None}}
                )
                raise DuplicateError("jti") from exc
            return True

    async def _revoke(self, query: dict[str, Any]) -> None:
        with _unavailable():
            await self.refresh_tokens.update_many(query, {"$set": {"revoked": True}})

    async def revoke_refresh_token(self, jti: str) -> None:
        await self._revoke({"_id": jti})

    async def revoke_family(self, family: str) -> None:
        await self._revoke({"family": family})

    async def revoke_user_tokens(self, user_id: str) -> None:
        await self._revoke({"user_id": user_id})

    # --- OAuth states ---

    async def put_state(self, state: OAuthState) -> None:
        doc: dict[str, Any] = {
            "_id": state.state,
            "provider": state.provider,
            "expires_at": state.expires_at,
            "code_verifier": state.code_verifier,
            "binding_hash": state.binding_hash,
            "purge_at": _purge_at(state.expires_at),
        }
        if state.code_hash is not None:
            doc["code_hash"] = state.code_hash
        with _unavailable():
            try:
                await self.oauth_states.insert_one(doc)
            except DuplicateKeyError as exc:
                raise DuplicateError("state") from exc

    async def attach_code(self, state: str, provider: str, code_hash: str, now: float) -> bool:
        # The first code only: `code_hash` is absent until a callback attaches one.
        query = {"_id": state, "provider": provider, "expires_at": {"$gt": now}}
        with _unavailable():
            result = await self.oauth_states.update_one(
                {**query, "code_hash": {"$exists": False}}, {"$set": {"code_hash": code_hash}}
            )
        return result.matched_count == 1

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
        with _unavailable():
            return _state(await self.oauth_states.find_one(query))

    async def consume_state(self, provider: str, state: str) -> bool:
        with _unavailable():
            result = await self.oauth_states.delete_one({"_id": state, "provider": provider})
        return result.deleted_count == 1

    # --- counters ---

    async def hit_counter(self, key: str, window: float, now: float) -> tuple[int, float]:
        # No upsert with $setOnInsert, and no $set of the window's end: some wire-compatible
        # servers ignore $setOnInsert, swallow a findAndModify's duplicate-key error, or
        # round a $set float to 15 digits. Each step below is one single-document
        # operation that only one concurrent caller can win, so the loop converges.
        with _unavailable():
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

    async def peek_counter(self, key: str, now: float) -> tuple[int, float]:
        with _unavailable():
            doc = await self.counters.find_one({"_id": key, "ends": {"$gt": now}})
        return (0, now) if doc is None else (int(doc["hits"]), float(doc["ends"]))

    async def reset_counter(self, key: str) -> None:
        with _unavailable():
            await self.counters.delete_one({"_id": key})

    async def purge_expired(self, now: float) -> None:
        with _unavailable():
            await self.oauth_states.delete_many({"expires_at": {"$lte": now}})
            await self.counters.delete_many({"ends": {"$lte": now}})
            await self.refresh_tokens.delete_many({"expires_at": {"$lte": now}})

    # --- bulk loading ---

    async def bulk_insert_users(self, users: Sequence[User]) -> None:
        if any(user.identities for user in users):
            raise ValueError("bulk_insert_users takes users without provider identities")
        if not users:
            return  # insert_many refuses an empty list
        docs = [user_document(user) for user in users]
        # Unordered: the server may apply the batch in parallel, and one duplicate does
        # not stop the rest; majority: the load is durable once this returns.
        # get_collection, not users.with_options: mongomock-motor 0.0.36 hands the latter
        # back as its synchronous collection.
        majority = WriteConcern("majority")
        collection = self.database.get_collection(self.users.name, write_concern=majority)
        with _unavailable():
            try:
                await collection.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors") or []
                first = next((e for e in errors if e.get("code") == 11000), None)
                if first is None:
                    raise
                duplicate = DuplicateKeyError(first.get("errmsg", ""), 11000, first)
                field = await self._user_duplicate_field(duplicate, docs[first["index"]])
                raise DuplicateError(field) from exc

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
        with _unavailable():
            try:
                await self.signing_keys.insert_one(doc)
            except DuplicateKeyError as exc:
                raise DuplicateError("generation") from exc

    async def list_signing_keys(self) -> list[SigningKey]:
        with _unavailable():
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
        self, provider: str, token_hash: str, expires_at: float, now: float
    ) -> None:
        # Its own collection, TTL-purged like the others; the index is created here so that
        # this pair stays self-contained (create_index is a no-op once it exists).
        collection = self.database["exchanged_tokens"]
        with _unavailable():
            await collection.create_index("purge_at", name="purge_at_ttl", expireAfterSeconds=0)
            doc = {
                "_id": identity_key(provider, token_hash),
                "expires_at": expires_at,
                "purge_at": _purge_at(expires_at),
            }
            # A token is remembered once, by the exchange that obtained it; a retry keeps
            # the first expiry (no $set: see hit_counter about floats on some servers).
            with suppress(DuplicateKeyError):
                await collection.insert_one(doc)

    async def is_exchanged_token(self, provider: str, token_hash: str, now: float) -> bool:
        query = {"_id": identity_key(provider, token_hash), "expires_at": {"$gt": now}}
        with _unavailable():
            # No projection: nx-27017 0.8.1 finds nothing for find_one(query, {"_id": 1}).
            found = await self.database["exchanged_tokens"].find_one(query)
        return found is not None
