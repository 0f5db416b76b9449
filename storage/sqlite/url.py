"""The SQLite backend's declaration (storage/backend.py): `sqlite:///path/to/vhod.db`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from storage.backend import Backend

if TYPE_CHECKING:
    from storage.base import Store

PREFIX = "sqlite:///"
MEMORY = ":memory:"


def _problem(url: str, deep: bool) -> str | None:
    if not url.startswith(PREFIX) or url == PREFIX:
        return "a SQLite storage URL looks like sqlite:///path/to/vhod.db"
    return None


def database_file(url: str) -> Path | None:
    """`sqlite:///data/vhod.db` is relative to the working folder, `sqlite:////var/lib/vhod.db`
    absolute; `sqlite:///:memory:` has no file."""
    path = url.removeprefix(PREFIX)
    return None if path == MEMORY else Path(path)


def _open(url: str) -> Store:
    from storage.sqlite.store import SQLiteStore
    from storage.sqlite.worker import PRIVATE_DIR_MODE

    path = database_file(url)
    if path is not None:
        # The database's folder and missing parents, for its owner only; a folder that exists
        # already is the operator's (it may be /var/lib): left as it is.
        missing = [p for p in [path.parent, *path.parent.parents] if not p.exists()]
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in missing:
            folder.chmod(PRIVATE_DIR_MODE)  # chmod, so the umask cannot widen it
    return SQLiteStore(str(path) if path is not None else MEMORY)


SQLITE = Backend(
    name="SQLite",
    schemes=("sqlite",),
    shared=False,
    problem=_problem,
    open=_open,
    database_file=database_file,
)
