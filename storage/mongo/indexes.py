"""The MongoDB store's indexes: the unique ones are its constraints, the TTL ones its purge."""

from __future__ import annotations

from typing import Any

from pymongo import monitoring
from pymongo.errors import OperationFailure

from storage.base import StorageUnavailable
from storage.mongo.errors import USER_UNIQUE_FIELDS


async def create_indexes(database: Any) -> None:
    """Create every index the store relies on; idempotent."""
    users = database["users"]
    for field in USER_UNIQUE_FIELDS:
        await users.create_index(
            field,
            name=f"{field}_unique",
            unique=True,
            partialFilterExpression={field: {"$type": "string"}},
        )
    refresh_tokens = database["refresh_tokens"]
    await refresh_tokens.create_index("user_id", name="user_id")
    await refresh_tokens.create_index("family", name="family")
    await database["oauth_states"].create_index(
        "code_hash",
        name="code_hash",
        partialFilterExpression={"code_hash": {"$type": "string"}},
    )
    await database["one_time_codes"].create_index("user_id", name="user_id")
    # A passkey's credential id is its _id (unique by nature); the API names it by `id`.
    await database["passkeys"].create_index("user_id", name="user_id")
    await database["passkeys"].create_index("id", name="id_unique", unique=True)
    await database["mfa_challenges"].create_index("user_id", name="user_id")
    # Every instance reads the revocations since its last poll, each second or so.
    await database["revoked_families"].create_index("revoked_at", name="revoked_at")
    for name in (
        "refresh_tokens",
        "oauth_states",
        "counters",
        "revoked_families",
        "exchanged_tokens",
        "one_time_codes",
        "mfa_challenges",
    ):
        await database[name].create_index("purge_at", name="purge_at_ttl", expireAfterSeconds=0)


async def missing_unique_fields(database: Any) -> list[str]:
    """The user fields whose unique index is gone (say, the database was recreated).

    Found by key and flag, not by name: nx-27017 0.8.1 names its indexes itself
    ("idx_users_email")."""
    indexes = (await database["users"].index_information()).values()
    unique_keys = {tuple(spec["key"]) for spec in indexes if spec.get("unique")}
    return [field for field in USER_UNIQUE_FIELDS if ((field, 1),) not in unique_keys]


async def ensure_unique_indexes(database: Any) -> None:
    """Re-create missing unique indexes; StorageUnavailable when they cannot be (the
    data already holds duplicates), so that uniqueness never silently vanishes."""
    missing = await missing_unique_fields(database)
    if not missing:
        return
    try:
        await create_indexes(database)
    except OperationFailure as exc:
        raise StorageUnavailable(
            f"the unique index of users.{', users.'.join(missing)} is missing and cannot"
            f" be re-created: {exc}"
        ) from exc
    if await missing_unique_fields(database):
        raise StorageUnavailable("the unique indexes of users could not be re-created")


class PoolClearedWatch(monitoring.ConnectionPoolListener):
    """Notes when the driver drops its connections to a server (it went away, stepped
    down or restarted): the database it comes back with may have lost its indexes."""

    def __init__(self) -> None:
        self.cleared = True  # nothing verified yet

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        self.cleared = True

    # The listener interface has no defaults; the other events do not matter here.
    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None: ...

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None: ...

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None: ...

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None: ...

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None: ...

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None: ...

    def connection_check_out_started(
        self, event: monitoring.ConnectionCheckOutStartedEvent
    ) -> None: ...

    def connection_check_out_failed(
        self, event: monitoring.ConnectionCheckOutFailedEvent
    ) -> None: ...

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None: ...

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None: ...
