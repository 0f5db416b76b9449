"""How the MongoDB store reads PyMongo's errors: unavailable versus a bug, and duplicates."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
)

from storage.base import PartialWrite, StorageUnavailable

USER_UNIQUE_FIELDS = ("email", "phone")

# Index names as MongoDB reports them ("index: email_unique dup key: ...") and as
# nx-27017 0.8.1, which names indexes itself, does ("UNIQUE constraint failed: index
# 'idx_users_email'", with no keyPattern).
_INDEX_NAME = re.compile(r"index:?\s*'?([\w.$-]+)")


# Server error codes of a passing state (failover, shutdown, a slow or unreachable member),
# after which the same request may well succeed: the "retryable" codes of the drivers'
# retryable-writes specification, plus the write-concern and time-limit failures.
TRANSIENT_CODES = frozenset(
    {
        6,  # HostUnreachable
        7,  # HostNotFound
        50,  # MaxTimeMSExpired
        64,  # WriteConcernFailed
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        134,  # ReadConcernMajorityNotAvailableYet
        189,  # PrimarySteppedDown
        262,  # ExceededTimeLimit
        9001,  # SocketException
        10107,  # NotWritablePrimary
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
    }
)
TRANSIENT_LABELS = ("RetryableWriteError", "TransientTransactionError")


def is_transient(exc: PyMongoError) -> bool:
    """True for a fault of the database's availability, not of the request or this code."""
    if isinstance(exc, ConnectionFailure | WriteConcernError | ExecutionTimeout):
        # ConnectionFailure: AutoReconnect (and so NotPrimaryError, NetworkTimeout),
        # ServerSelectionTimeoutError, WaitQueueTimeoutError.
        return True
    if any(exc.has_error_label(label) for label in TRANSIENT_LABELS):
        return True
    return isinstance(exc, OperationFailure) and exc.code in TRANSIENT_CODES


@contextmanager
def unavailable() -> Iterator[None]:
    """Turn the driver's transient faults into StorageUnavailable; anything else (a bug, a
    refused query) propagates as it is and becomes a 500.

    A write-concern error means the primary applied the write but could not confirm its
    replication in time: the write may persist or be rolled back, so it is a PartialWrite."""
    try:
        yield
    except WriteConcernError as exc:
        raise PartialWrite(str(exc)) from exc
    except PyMongoError as exc:
        if is_transient(exc):
            raise StorageUnavailable(str(exc)) from exc
        raise


def hinted_field(exc: DuplicateKeyError) -> str | None:
    """The user field a duplicate-key error names, if it names one."""
    details = exc.details or {}
    key_pattern = details.get("keyPattern") or {}
    for key in key_pattern:
        if key in USER_UNIQUE_FIELDS:
            return str(key)
        if key == "_id":
            return "id"
    match = _INDEX_NAME.search(str(details.get("errmsg") or exc))
    if match is None:
        return None
    name = match.group(1).removeprefix("idx_users_").removesuffix("_unique")
    return {"email": "email", "phone": "phone", "_id_": "id"}.get(name)
