"""The MongoDB store's passkeys: one document each, its `_id` the credential id, so that
the primary key is what keeps a credential to one account on every server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.errors import DuplicateKeyError

from storage.base import DuplicateError, Passkey
from storage.mongo.errors import unavailable


def _passkey(doc: Mapping[str, Any]) -> Passkey:
    return Passkey(
        id=doc["id"],
        user_id=doc["user_id"],
        credential_id=doc["_id"],
        public_key=doc["public_key"],
        sign_count=int(doc["sign_count"]),
        name=doc["name"],
        created_at=float(doc["created_at"]),
        transports=tuple(doc.get("transports") or ()),
        backup_eligible=bool(doc.get("backup_eligible")),
        last_used_at=float(doc.get("last_used_at") or 0.0),
    )


class PasskeysMixin:
    """Store methods of the passkeys; MongoStore provides the database."""

    database: Any

    @property
    def passkeys(self) -> Any:
        return self.database["passkeys"]

    async def add_passkey(self, passkey: Passkey) -> None:
        doc = {
            "_id": passkey.credential_id,
            "id": passkey.id,
            "user_id": passkey.user_id,
            "public_key": passkey.public_key,
            "sign_count": passkey.sign_count,
            "name": passkey.name,
            "transports": list(passkey.transports),
            "backup_eligible": passkey.backup_eligible,
            "created_at": passkey.created_at,
            "last_used_at": passkey.last_used_at,
        }
        with unavailable():
            try:
                await self.passkeys.insert_one(doc)
            except DuplicateKeyError as exc:
                raise DuplicateError("credential_id") from exc

    async def list_passkeys(self, user_id: str) -> list[Passkey]:
        with unavailable():
            docs = await self.passkeys.find({"user_id": user_id}).to_list(None)
        # Sorted here: a user has a few, and nx-27017 0.8.1 sorts on two keys unreliably.
        return sorted((_passkey(doc) for doc in docs), key=lambda p: (p.created_at, p.id))

    async def find_passkey(self, credential_id: str) -> Passkey | None:
        with unavailable():
            doc = await self.passkeys.find_one({"_id": credential_id})
        return None if doc is None else _passkey(doc)

    async def rename_passkey(self, user_id: str, passkey_id: str, name: str) -> bool:
        with unavailable():
            result = await self.passkeys.update_one(
                {"id": passkey_id, "user_id": user_id}, {"$set": {"name": name}}
            )
        return bool(result.matched_count == 1)

    async def delete_passkey(self, user_id: str, passkey_id: str) -> bool:
        with unavailable():
            result = await self.passkeys.delete_one({"id": passkey_id, "user_id": user_id})
        return bool(result.deleted_count == 1)

    async def use_passkey(
        self, credential_id: str, old_count: int, new_count: int, now: float
    ) -> bool:
        # One document, one conditional update: of two assertions read at one counter,
        # only the first is recorded.
        with unavailable():
            result = await self.passkeys.update_one(
                {"_id": credential_id, "sign_count": old_count},
                {"$set": {"sign_count": new_count, "last_used_at": now}},
            )
        return bool(result.matched_count == 1)
