"""The stored schema's version, and the rule for migrating a store to this code's.

Each store keeps the version it was last migrated to (SQLite: the `meta` table, MongoDB: the
`meta` collection); a store from before versions were recorded (vhod 0.1.0) counts as 0.
Each change of schema adds a migration, numbered by the version it makes, to BOTH stores'
MIGRATIONS (storage/sqlite/schema.py, storage/mongo/schema.py); the highest number is the
version this code writes. setup() runs the missing ones, in order, at every start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

M = TypeVar("M")


class SchemaTooNew(Exception):
    """The store was migrated by a later vhod: this code must not read or write it."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(
            f"the store has schema version {found}, newer than this vhod knows ({known}): "
            "a later release migrated it; run that release or a newer one, or restore the "
            "backup made before the upgrade"
        )
        self.found = found
        self.known = known


def latest(migrations: Mapping[int, M]) -> int:
    """The version a store is at once every migration in `migrations` has run."""
    return max(migrations, default=0)


def pending(found: int, migrations: Mapping[int, M]) -> list[M]:
    """The migrations a store at version `found` still needs, in order; SchemaTooNew when
    the store is ahead of them."""
    known = latest(migrations)
    if found > known:
        raise SchemaTooNew(found, known)
    return [migrations[version] for version in sorted(migrations) if version > found]
