"""How the MongoDB store reads PyMongo's errors: unavailable versus a bug, and duplicates."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from pymongo.errors import ConnectionFailure, DuplicateKeyError

from storage.base import StorageUnavailable

USER_UNIQUE_FIELDS = ("email", "phone")

# Index names as MongoDB reports them ("index: email_unique dup key: ...") and as servers
# that name indexes themselves do ("UNIQUE constraint failed: index 'idx_users_email'").
_INDEX_NAME = re.compile(r"index:?\s*'?([\w.$-]+)")


@contextmanager
def unavailable() -> Iterator[None]:
    """Turn the driver's "cannot reach the database" errors into StorageUnavailable."""
    # ConnectionFailure covers AutoReconnect, NetworkTimeout and ServerSelectionTimeoutError.
    try:
        yield
    except ConnectionFailure as exc:
        raise StorageUnavailable(str(exc)) from exc


def hinted_field(exc: DuplicateKeyError) -> str | None:
    """The user field a duplicate-key error names, if it names one."""
    details = exc.details or {}
    key_pattern = details.get("keyPattern") or {}
    for key in key_pattern:
        if key in USER_UNIQUE_FIELDS:
            return key
        if key == "_id":
            return "id"
    match = _INDEX_NAME.search(str(details.get("errmsg") or exc))
    if match is None:
        return None
    name = match.group(1).removeprefix("idx_users_").removesuffix("_unique")
    return {"email": "email", "phone": "phone", "_id_": "id"}.get(name)
