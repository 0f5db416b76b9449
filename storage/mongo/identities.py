"""The MongoDB store's account linking: an identity's claim (unique `_id`) decides between
concurrent links; the user's list changes by compare-and-set on its `identities_version`."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.errors import DuplicateKeyError

from storage.base import DuplicateError, Identity, StorageUnavailable, User
from storage.mongo.docs import identity_document, identity_key, user_from
from storage.mongo.errors import unavailable

_CHANGE_ATTEMPTS = 8  # compare-and-set rounds before a change of identities gives up


class IdentitiesMixin:
    """Store methods of linking; MongoStore provides the collections."""

    users: Any
    identities: Any
    _after_reconnect: Callable[[], Awaitable[None]]

    async def find_user_by_identity(self, provider: str, subject: str) -> User | None:
        with unavailable():
            claim = await self.identities.find_one({"_id": identity_key(provider, subject)})
            if claim is None:
                return None
            user = user_from(await self.users.find_one({"_id": claim["user_id"]}))
        # A claim whose user no longer lists it (a link undone half-way, an unlink that
        # stopped before removing its claim) is no way in.
        if user is None or Identity(provider, subject) not in user.identities:
            return None
        return user

    async def link_identity(self, user_id: str, identity: Identity) -> bool:
        await self._after_reconnect()
        key = identity_key(identity.provider, identity.subject)
        with unavailable():
            try:  # the claim's _id is the identity's uniqueness: one concurrent link wins
                await self.identities.insert_one(
                    {"_id": key, **identity_document(identity), "user_id": user_id}
                )
            except DuplicateKeyError as exc:
                raise DuplicateError("identity") from exc
        try:
            with unavailable():
                outcome = await self._change_identities(user_id, identity.provider, identity)
        except BaseException:
            # The claim alone is no way in (find_user_by_identity checks the user), but it
            # would keep the identity from being linked anywhere: take it back.
            with contextlib.suppress(Exception):
                await self.identities.delete_one({"_id": key, "user_id": user_id})
            raise
        if outcome == "changed":
            return True
        with unavailable():
            await self.identities.delete_one({"_id": key, "user_id": user_id})
        if outcome == "no_user":
            return False
        raise DuplicateError("provider")

    async def unlink_identity(self, user_id: str, provider: str, *, keep_a_way_in: bool) -> str:
        with unavailable():
            outcome = await self._change_identities(
                user_id, provider, None, keep_a_way_in=keep_a_way_in
            )
            if outcome in ("no_user", "absent"):
                return "not_linked"
            if outcome == "last":
                return "last"
            # The user no longer lists it: now the claim goes, freeing the identity.
            await self.identities.delete_many({"user_id": user_id, "provider": provider})
        return "unlinked"

    async def _change_identities(
        self, user_id: str, provider: str, add: Identity | None, *, keep_a_way_in: bool = False
    ) -> str:
        """Add `add`, or remove the identity at `provider`, as one compare-and-set of the
        user's identities on their `identities_version`: a concurrent change makes the
        update match nothing, and this reads again. (A conditional $push/$pull would do,
        but the wire server the tests use does not evaluate array conditions.)"""
        for _ in range(_CHANGE_ATTEMPTS):
            doc = await self.users.find_one(
                {"_id": user_id}, {"identities": 1, "password_hash": 1, "identities_version": 1}
            )
            if doc is None:
                return "no_user"
            entries = list(doc.get("identities") or [])
            at_provider = [e for e in entries if e.get("provider") == provider]
            if add is not None:
                if at_provider:
                    return "taken"
                entries.append(identity_document(add))
            else:
                if not at_provider:
                    return "absent"
                has_password = isinstance(doc.get("password_hash"), str)
                if keep_a_way_in and not has_password and len(entries) < 2:
                    return "last"
                entries = [e for e in entries if e.get("provider") != provider]
            version = doc.get("identities_version")  # None: never changed (or absent)
            changed = await self.users.update_one(
                {"_id": user_id, "identities_version": version},
                {"$set": {"identities": entries, "identities_version": (version or 0) + 1}},
            )
            if changed.matched_count == 1:
                return "changed"
        raise StorageUnavailable("the user's identities kept changing; nothing was changed")
