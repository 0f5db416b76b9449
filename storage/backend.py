"""What a storage backend declares about itself, so that nothing outside storage/ matches
URL schemes: the schemes it serves, whether instances may share it, how to check a URL
without opening anything, where its data lives on this machine, and the store class.

A backend outside vhod registers a `Backend` under the entry-point group `vhod.storage`
(docs/storage-backends.md); the built-in ones are in storage/sqlite/url.py and
storage/mongo/url.py, which import nothing heavy: PyMongo loads only when a MongoDB store
opens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storage.base import Store

GROUP = "vhod.storage"


def _no_file(url: str) -> Path | None:
    return None


@dataclass(frozen=True)
class Backend:
    name: str
    schemes: tuple[str, ...]
    # Several vhod instances may use one store: their shared secrets must come from the
    # configuration (the key-encryption key), not from files beside one instance.
    shared: bool
    # What the backend refuses in a URL, found without opening anything (for --check-config);
    # `deep` may parse it as the driver would. Never echoes the URL, which may hold a password.
    problem: Callable[[str, bool], str | None]
    # The store for a URL this backend accepted (the caller runs its setup()); it imports
    # the driver, so that declaring a backend costs nothing at start.
    open: Callable[[str], Store]
    # The database file on this machine, if the backend keeps one (backups, key files beside it).
    database_file: Callable[[str], Path | None] = _no_file


def scheme_of(url: str) -> str:
    return url.split(":", 1)[0].lower() if ":" in url else ""
