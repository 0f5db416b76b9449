"""The MongoDB store's indexes: the unique ones are its constraints, the TTL ones its purge."""

from __future__ import annotations

from typing import Any

from storage.mongo_errors import USER_UNIQUE_FIELDS


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
    for name in ("refresh_tokens", "oauth_states", "counters", "revoked_families"):
        await database[name].create_index("purge_at", name="purge_at_ttl", expireAfterSeconds=0)
