"""The MongoDB store's schema version (the `meta` collection) and its migrations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from storage.schema import latest, pending

SCHEMA_ID = "schema_version"


async def recorded_version(database: Any) -> int:
    """The version the database was last migrated to; 0 when none is recorded (vhod
    0.1.0, or a new database)."""
    doc = await database["meta"].find_one({"_id": SCHEMA_ID})
    return 0 if doc is None else int(doc["version"])


async def to_1(database: Any) -> None:
    """0.9.0: the version is recorded (the `meta` collection). 0.1.0's collections and
    documents are otherwise the same; setup() creates any index that is missing."""


async def to_2(database: Any) -> None:
    """Account linking. Nothing to rewrite: an identity without `linked_at` or `display`
    reads as 0 and none, and one identity per provider and user is the condition of the
    update that links it (storage/mongo/store.py), not an index."""


async def to_3(database: Any) -> None:
    """Passkeys: the `passkeys` collection, whose indexes create_indexes makes (the
    collection itself appears with its first document)."""


async def to_4(database: Any) -> None:
    """Second factors: the `totp_factors`, `recovery_codes` and `mfa_challenges`
    collections, created on first write; their indexes come with create_indexes."""


# Keys: the version each migration makes. The same keys as storage/sqlite/schema.py's.
MIGRATIONS: dict[int, Callable[[Any], Awaitable[None]]] = {1: to_1, 2: to_2, 3: to_3, 4: to_4}


async def migrate(database: Any, create_indexes: Callable[[], Awaitable[None]]) -> None:
    """Refuse a newer database (SchemaTooNew) before anything is written, create missing
    indexes, run the pending migrations, record the version.

    Instances starting at once may each run a migration: each must be idempotent (a
    multi-document transaction would need a replica set). `$max` keeps the recorded version
    from going down when an older instance records its own after a newer one."""
    steps = pending(await recorded_version(database), MIGRATIONS)
    await create_indexes()
    for step in steps:
        await step(database)
    await database["meta"].update_one(
        {"_id": SCHEMA_ID}, {"$max": {"version": latest(MIGRATIONS)}}, upsert=True
    )
