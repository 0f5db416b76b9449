"""The MongoDB store's second factors: TOTP factors, recovery codes, MFA challenges.

Each is one document, so every compare-and-set is one single-document update."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from storage.base import MfaChallenge, SecondFactors, TotpFactor
from storage.mongo.docs import purge_at
from storage.mongo.errors import unavailable


def _totp(doc: Mapping[str, Any] | None) -> TotpFactor | None:
    if doc is None:
        return None
    return TotpFactor(
        user_id=doc["_id"],
        secret=doc["secret"],
        confirmed=bool(doc.get("confirmed")),
        last_step=int(doc.get("last_step") or 0),
        created_at=float(doc.get("created_at") or 0.0),
    )


def _challenge(doc: Mapping[str, Any] | None) -> MfaChallenge | None:
    if doc is None:
        return None
    return MfaChallenge(
        token_hash=doc["_id"],
        user_id=doc["user_id"],
        amr=[str(value) for value in doc.get("amr") or []],
        expires_at=float(doc["expires_at"]),
        tries=int(doc.get("tries") or 0),
        bound=doc.get("bound"),
    )


async def delete_second_factors(database: Any, user_id: str) -> None:
    """A step of delete_user: idempotent, so a retry finishes it."""
    await database["totp_factors"].delete_one({"_id": user_id})
    await database["recovery_codes"].delete_one({"_id": user_id})
    await database["mfa_challenges"].delete_many({"user_id": user_id})


class MfaMixin:
    """Store methods of the second factors; MongoStore provides the database."""

    database: Any

    @property
    def _totp_factors(self) -> Any:
        return self.database["totp_factors"]

    @property
    def _recovery_codes(self) -> Any:
        return self.database["recovery_codes"]

    @property
    def _mfa_challenges(self) -> Any:
        return self.database["mfa_challenges"]

    async def put_totp(self, factor: TotpFactor) -> bool:
        fields = {"secret": factor.secret, "last_step": 0, "created_at": factor.created_at}
        with unavailable():
            try:
                # Matches an unconfirmed one, or none: then the upsert inserts, and a
                # confirmed one (same _id) makes that insert a duplicate.
                await self._totp_factors.update_one(
                    {"_id": factor.user_id, "confirmed": False},
                    {"$set": fields},
                    upsert=True,
                )
            except DuplicateKeyError:
                return False
        return True

    async def get_totp(self, user_id: str) -> TotpFactor | None:
        with unavailable():
            return _totp(await self._totp_factors.find_one({"_id": user_id}))

    async def second_factors(self, user_id: str) -> SecondFactors:
        with unavailable():
            totp, passkeys = await asyncio.gather(
                self._totp_factors.find_one({"_id": user_id}, {"confirmed": 1}),
                self.database["passkeys"].count_documents({"user_id": user_id}),
            )
        confirmed = totp is not None and bool(totp.get("confirmed"))
        return SecondFactors(totp_confirmed=confirmed, passkeys=int(passkeys))

    async def confirm_totp(self, user_id: str, secret: str, step: int) -> bool:
        with unavailable():
            result = await self._totp_factors.update_one(
                {
                    "_id": user_id,
                    "confirmed": False,
                    "secret": secret,
                    "last_step": {"$lt": step},
                },
                {"$set": {"confirmed": True, "last_step": step}},
            )
        return bool(result.modified_count == 1)

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        with unavailable():
            result = await self._totp_factors.update_one(
                {"_id": user_id, "confirmed": True, "last_step": {"$lt": step}},
                {"$set": {"last_step": step}},
            )
        return bool(result.modified_count == 1)

    async def delete_totp(self, user_id: str) -> bool:
        with unavailable():
            result = await self._totp_factors.delete_one({"_id": user_id})
        return bool(result.deleted_count == 1)

    async def set_recovery_codes(self, user_id: str, code_hashes: Sequence[str]) -> None:
        with unavailable():
            if not code_hashes:
                await self._recovery_codes.delete_one({"_id": user_id})
                return
            # One document per user: the whole set is replaced at once.
            await self._recovery_codes.update_one(
                {"_id": user_id}, {"$set": {"codes": list(dict.fromkeys(code_hashes))}}, upsert=True
            )

    async def use_recovery_code(self, user_id: str, code_hash: str) -> bool:
        with unavailable():
            result = await self._recovery_codes.update_one(
                {"_id": user_id, "codes": code_hash}, {"$pull": {"codes": code_hash}}
            )
        return bool(result.modified_count == 1)

    async def count_recovery_codes(self, user_id: str) -> int:
        with unavailable():
            doc = await self._recovery_codes.find_one({"_id": user_id})
        return len(doc.get("codes") or []) if doc else 0

    async def put_mfa_challenge(self, challenge: MfaChallenge) -> None:
        with unavailable():
            await self._mfa_challenges.insert_one(
                {
                    "_id": challenge.token_hash,
                    "user_id": challenge.user_id,
                    "amr": list(challenge.amr),
                    "expires_at": challenge.expires_at,
                    "tries": challenge.tries,
                    "bound": challenge.bound,
                    "purge_at": purge_at(challenge.expires_at),
                }
            )

    async def try_mfa_challenge(
        self, token_hash: str, now: float, max_tries: int
    ) -> MfaChallenge | None:
        with unavailable():
            counted = await self._mfa_challenges.find_one_and_update(
                {"_id": token_hash, "expires_at": {"$gt": now}, "tries": {"$lt": max_tries}},
                {"$inc": {"tries": 1}},
                return_document=ReturnDocument.AFTER,
            )
        return _challenge(counted)

    async def consume_mfa_challenge(self, token_hash: str) -> bool:
        with unavailable():
            result = await self._mfa_challenges.delete_one({"_id": token_hash})
        return bool(result.deleted_count == 1)
