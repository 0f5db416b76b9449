"""The MongoDB store's operator side: blocking users, listing them, and the audit log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo.errors import BulkWriteError

from storage.base import AuditEvent, EventQuery, User
from storage.mongo.docs import purge_at, user_from
from storage.mongo.errors import unavailable

DUPLICATE_KEY = 11000


async def create_admin_indexes(database: Any) -> None:
    # Without the `_id` tie-breaker the sorts use: nx-27017 0.8.1 refuses every later
    # insert once an index names `_id` ("JSON path error near '_id'").
    await database["users"].create_index("created_at", name="created_at")
    events = database["audit_events"]
    await events.create_index("time", name="time")
    await events.create_index([("user_id", 1), ("time", 1)], name="user_time")
    # The counts of folded events (MongoAdmin.add_events), purged with their events.
    folds = database["audit_folds"]
    await folds.create_index("purge_at", name="purge_at_ttl", expireAfterSeconds=0)
    # The retention: each event carries the date it may go (audit.retention_days).
    await events.create_index("purge_at", name="purge_at_ttl", expireAfterSeconds=0)


def _event_document(event: AuditEvent) -> dict[str, Any]:
    return {
        "_id": event.id,
        "time": event.time,
        "type": event.type,
        "user_id": event.user_id,
        "identifier": event.identifier,
        "ip": event.ip,
        "request_id": event.request_id,
        "details": dict(event.details),
        "expires_at": event.expires_at,
        "purge_at": purge_at(event.expires_at),
        "fold": event.fold,  # the count is in audit_folds
    }


def _event_from(doc: Mapping[str, Any], repeats: int = 1) -> AuditEvent:
    return AuditEvent(
        id=doc["_id"],
        time=float(doc["time"]),
        type=doc["type"],
        user_id=doc.get("user_id"),
        identifier=doc.get("identifier"),
        ip=doc.get("ip") or "-",
        request_id=doc.get("request_id") or "-",
        details=dict(doc.get("details") or {}),
        expires_at=float(doc.get("expires_at") or 0.0),
        fold=doc.get("fold"),
        repeats=int(repeats),
    )


def _after(field: str, after: tuple[float, str], descending: bool) -> dict[str, Any]:
    """The keyset condition: strictly beyond the pair (value, _id) in the sort order."""
    beyond = "$lt" if descending else "$gt"
    value, last_id = after
    return {"$or": [{field: {beyond: value}}, {field: value, "_id": {beyond: last_id}}]}


def _event_filter(query: EventQuery) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = []
    if query.user_id is not None:
        conditions.append({"user_id": query.user_id})
    if query.types:
        conditions.append({"type": {"$in": list(query.types)}})
    if query.since is not None:
        conditions.append({"time": {"$gte": query.since}})
    if query.until is not None:
        conditions.append({"time": {"$lt": query.until}})
    if query.after is not None:
        conditions.append(_after("time", query.after, query.newest_first))
    return {"$and": conditions} if conditions else {}


class MongoAdmin:
    """Mixed into MongoStore, whose `database` and `users` collection these use."""

    database: Any
    users: Any

    async def set_user_disabled(self, user_id: str, disabled: bool) -> bool:
        with unavailable():
            result = await self.users.update_one(
                {"_id": user_id}, {"$set": {"disabled": bool(disabled)}}
            )
        return bool(result.matched_count == 1)

    async def list_users(self, limit: int, after: tuple[float, str] | None = None) -> list[User]:
        query = {} if after is None else _after("created_at", after, False)
        with unavailable():
            cursor = self.users.find(query).sort([("created_at", 1), ("_id", 1)]).limit(limit)
            docs = await cursor.to_list(None)
        return [user for doc in docs if (user := user_from(doc)) is not None]

    async def add_events(self, events: Sequence[AuditEvent]) -> None:
        """Each fold is one document of `audit_folds` (its `_id` the fold key, so two
        instances folding at once meet on it) holding the count; the event kept is the one
        whose fold document was made. A unique index on the events' `fold` would do, but
        mongomock applies it without its partial filter, and bulk upserts it cannot take."""
        folded = [event for event in events if event.fold is not None]
        seen = await self._count_folds(folded) if folded else set()
        kept = [event for event in events if event.fold is None or event.fold not in seen]
        if not kept:
            return
        with unavailable():
            try:
                await self.database["audit_events"].insert_many(
                    [_event_document(event) for event in kept], ordered=False
                )
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors") or []
                if any(error.get("code") != DUPLICATE_KEY for error in errors):
                    raise

    async def _count_folds(self, folded: Sequence[AuditEvent]) -> set[str]:
        """Make the fold documents of `folded`; the folds that existed already, whose
        counts are raised instead (an event stored twice is not counted twice)."""
        folds = self.database["audit_folds"]
        documents = [
            {
                "_id": event.fold,
                "event_id": event.id,
                "repeats": event.repeats,
                "expires_at": event.expires_at,
                "purge_at": purge_at(event.expires_at),
            }
            for event in folded
        ]
        with unavailable():
            try:
                await folds.insert_many(documents, ordered=False)
                return set()
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors") or []
                if any(error.get("code") != DUPLICATE_KEY for error in errors):
                    raise
            existing = [folded[error["index"]] for error in errors]
            by_count: dict[int, list[AuditEvent]] = {}
            for event in existing:
                by_count.setdefault(event.repeats, []).append(event)
            for repeats, group in by_count.items():
                await folds.update_many(
                    {
                        "_id": {"$in": [event.fold for event in group]},
                        "event_id": {"$nin": [event.id for event in group]},
                    },
                    {"$inc": {"repeats": repeats}},
                )
        return {event.fold for event in existing if event.fold is not None}

    async def purge_events_before(self, time: float) -> None:
        # Their folds (audit_folds) name a window long past: no new event meets them again,
        # and they go at their own expiry.
        with unavailable():
            await self.database["audit_events"].delete_many({"time": {"$lt": time}})

    async def forget_user_in_events(self, user_id: str, pseudonym: str) -> None:
        with unavailable():
            await self.database["audit_events"].update_many(
                {"user_id": user_id}, {"$set": {"user_id": None, "identifier": pseudonym}}
            )

    async def list_events(self, query: EventQuery) -> list[AuditEvent]:
        order = -1 if query.newest_first else 1
        with unavailable():
            cursor = (
                self.database["audit_events"]
                .find(_event_filter(query))
                .sort([("time", order), ("_id", order)])
                .limit(query.limit)
            )
            docs = await cursor.to_list(None)
            folds = [doc["fold"] for doc in docs if doc.get("fold")]
            counts: dict[str, int] = {}
            if folds:
                found = self.database["audit_folds"].find({"_id": {"$in": folds}})
                counts = {fold["_id"]: fold["repeats"] for fold in await found.to_list(None)}
        return [_event_from(doc, counts.get(doc.get("fold"), 1)) for doc in docs]
