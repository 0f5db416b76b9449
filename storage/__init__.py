"""Storage behind one async interface: embedded SQLite (default) or MongoDB."""

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from storage.base import (
    AuditEvent,
    DuplicateError,
    EventQuery,
    Identity,
    MfaChallenge,
    OAuthState,
    OneTimeCode,
    PartialWrite,
    RefreshToken,
    SigningKey,
    StorageUnavailable,
    Store,
    TotpFactor,
    User,
)
from storage.sqlite import SQLiteStore
from storage.sqlite_worker import PRIVATE_DIR_MODE

if TYPE_CHECKING:
    from storage.mongo import MongoStore

__all__ = [
    "AuditEvent",
    "DuplicateError",
    "EventQuery",
    "Identity",
    "MfaChallenge",
    "MongoStore",
    "OAuthState",
    "OneTimeCode",
    "PartialWrite",
    "RefreshToken",
    "SQLiteStore",
    "SigningKey",
    "StorageUnavailable",
    "Store",
    "TotpFactor",
    "User",
    "open_store",
    "url_problem",
]

_SQLITE_PREFIX = "sqlite:///"


def __getattr__(name: str) -> object:
    # PyMongo is a fifth of the start-up's imports: a SQLite deployment never loads it.
    if name == "MongoStore":
        from storage.mongo import MongoStore

        return MongoStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def open_store(url: str) -> Store:
    """The store a storage URL names; the caller runs its setup().

    `sqlite:///data/vhod.db` is relative to the working folder, `sqlite:////var/lib/vhod.db`
    absolute, `sqlite:///:memory:` in memory; `mongodb://` and `mongodb+srv://` select MongoDB.
    """
    if problem := url_problem(url, parse_mongodb=False):
        raise ValueError(problem)
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        path = url.removeprefix(_SQLITE_PREFIX)
        if path != ":memory:":
            _make_private_folder(Path(path).parent)
        return SQLiteStore(path)
    if scheme in ("mongodb", "mongodb+srv"):
        from pymongo.errors import ConfigurationError

        from storage.mongo import MongoStore

        try:
            return MongoStore(url)
        except (ValueError, ConfigurationError) as exc:
            # PyMongo's InvalidURI is no ValueError: a bad URL is one kind of error for callers.
            raise ValueError(f"the MongoDB driver refuses it: {exc}") from exc
    raise AssertionError(scheme)  # url_problem refused every other scheme


def url_problem(url: str, *, parse_mongodb: bool = True) -> str | None:
    """What open_store refuses in `url`, found without opening anything: no folder made, no
    client started (for --check-config). A mongodb+srv:// host is not looked up in DNS."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        if not url.startswith(_SQLITE_PREFIX) or url == _SQLITE_PREFIX:
            return "a SQLite storage URL looks like sqlite:///path/to/vhod.db"
        return None
    if scheme == "mongodb" and parse_mongodb:
        from pymongo.errors import ConfigurationError
        from pymongo.uri_parser import parse_uri

        try:
            with warnings.catch_warnings():  # the client warns of unknown options itself
                warnings.simplefilter("ignore")
                parse_uri(url, warn=True)  # as the client parses it: unknown options only warn
        except (ValueError, ConfigurationError) as exc:
            return f"the MongoDB driver refuses it: {exc}"
        return None
    if scheme in ("mongodb", "mongodb+srv"):
        return None
    # Only the scheme: the rest of a URL may carry a password.
    return f"unknown storage URL scheme {scheme!r}: use sqlite:/// or mongodb://"


def _make_private_folder(folder: Path) -> None:
    """Create the database's folder (and missing parents) for its owner only.

    A folder that exists already is the operator's (it may be /var/lib): left as it is."""
    missing = [folder, *folder.parents]
    missing = [path for path in missing if not path.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    for path in missing:
        path.chmod(PRIVATE_DIR_MODE)  # chmod, so the umask cannot widen it
