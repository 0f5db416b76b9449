"""Storage behind one async interface: embedded SQLite (default) or MongoDB."""

from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from storage.backend import GROUP, Backend, scheme_of
from storage.base import (
    AuditEvent,
    DuplicateError,
    EventQuery,
    Identity,
    MfaChallenge,
    OAuthState,
    OneTimeCode,
    PartialWrite,
    Passkey,
    RefreshToken,
    SecondFactors,
    SigningKey,
    StorageUnavailable,
    Store,
    TotpFactor,
    User,
)
from storage.mongo.url import MONGODB
from storage.sqlite.store import SQLiteStore
from storage.sqlite.url import SQLITE

if TYPE_CHECKING:
    from storage.mongo.store import MongoStore

__all__ = [
    "AuditEvent",
    "Backend",
    "DuplicateError",
    "EventQuery",
    "Identity",
    "MfaChallenge",
    "MongoStore",
    "OAuthState",
    "OneTimeCode",
    "PartialWrite",
    "Passkey",
    "RefreshToken",
    "SQLiteStore",
    "SecondFactors",
    "SigningKey",
    "StorageUnavailable",
    "Store",
    "TotpFactor",
    "User",
    "backend_for",
    "database_file",
    "is_shared",
    "open_store",
    "url_problem",
]


def __getattr__(name: str) -> object:
    # PyMongo is a fifth of the start-up's imports: a SQLite deployment never loads it.
    if name == "MongoStore":
        from storage.mongo.store import MongoStore

        return MongoStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@cache
def backends() -> tuple[Backend, ...]:
    """The built-in backends, then those installed under the entry-point group vhod.storage."""
    found = [SQLITE, MONGODB]
    for entry in entry_points(group=GROUP):
        backend = entry.load()
        if not isinstance(backend, Backend):
            raise TypeError(f"entry point {entry.name} of {GROUP} is not a storage.Backend")
        found.append(backend)
    return tuple(found)


def backend_for(url: str) -> Backend | None:
    """The backend that serves `url`'s scheme; None for a scheme none declares."""
    scheme = scheme_of(url)
    return next((b for b in backends() if scheme in b.schemes), None)


async def open_store(url: str) -> Store:
    """The store a storage URL names; the caller runs its setup()."""
    if problem := url_problem(url, deep=False):
        raise ValueError(problem)
    backend = backend_for(url)
    assert backend is not None  # url_problem refused every other scheme
    return backend.open(url)


def database_file(url: str) -> Path | None:
    """The database file on this machine that `url` names, if its backend keeps one."""
    backend = backend_for(url)
    return backend.database_file(url) if backend else None


def is_shared(url: str) -> bool:
    """Whether several instances may use the store `url` names (unknown schemes: yes, the
    careful answer; url_problem refuses them anyway)."""
    backend = backend_for(url)
    return backend is None or backend.shared


def url_problem(url: str, *, deep: bool = True) -> str | None:
    """What open_store refuses in `url`, found without opening anything: no folder made, no
    client started (for --check-config). `deep` lets a backend parse it as its driver would."""
    backend = backend_for(url)
    if backend is None:
        # Only the scheme: the rest of a URL may carry a password.
        schemes = ", ".join(f"{s}://" for b in backends() for s in b.schemes)
        return f"unknown storage URL scheme {scheme_of(url)!r}: use one of {schemes}"
    return backend.problem(url, deep)
