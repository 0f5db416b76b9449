"""Storage behind one async interface: embedded SQLite (default) or MongoDB."""

from storage.base import (
    DuplicateError,
    OAuthState,
    RefreshToken,
    Store,
    StorageUnavailable,
    User,
)

__all__ = ["DuplicateError", "OAuthState", "RefreshToken", "Store", "StorageUnavailable", "User"]
