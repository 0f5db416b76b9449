"""Generated secrets kept in a file: created atomically, once, owner-only; a bad file is named."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


class SecretFileError(ValueError):
    """A secret file exists but cannot be used; the message names the file."""


def read_or_create_secret(path: Path, *, min_bytes: int, what: str, create: bool = True) -> bytes:
    """The secret in `path`, or a new random one written there first.

    With `create` false nothing is written: a missing file gives a random value that is
    kept nowhere (for --check-config, which checks a file that exists and makes none).

    Processes starting at once on a fresh folder all end with the same value: each writes a
    complete temporary file and links it to `path`; the first link wins, and the others read
    the winner's file, which is whole from the moment it has its name.
    """
    if not create and not path.exists():
        return secrets.token_urlsafe(48).encode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # owner only (D19)
    if not path.exists():
        value = secrets.token_urlsafe(48).encode("ascii")
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(value)
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):  # another process was first
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    try:
        value = path.read_bytes().strip()
    except OSError as exc:
        raise SecretFileError(f"{path}: cannot read the {what}: {exc.strerror}") from exc
    if len(value) < min_bytes:
        raise SecretFileError(
            f"{path}: the {what} there is shorter than {min_bytes} bytes; "
            "delete the file to have a new one generated, or configure one"
        )
    return value
