"""Password hashing with bcrypt in a bounded worker pool; the event loop never waits on a hash."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import bcrypt

from core.errors import ApiError

T = TypeVar("T")

BCRYPT_MAX_INPUT = 72
MAX_SECRET_BYTES = 1024
# Pre-hashed secrets start with 0xFF, a byte that never occurs in UTF-8, so their domain is
# disjoint from every secret bcrypt takes as it is: no long secret can collide with a short one.
_PREHASH_MARKER = b"\xff"
_PREHASH_KEY = b"vhod/bcrypt-prehash/v1"
_COST_RE = re.compile(r"^\$2[aby]\$(\d{2})\$")
# Hash workers run at a lower CPU priority than the event loop, so that a flood of logins
# saturating the cores still leaves the loop (token checks, everything else) first in line.
HASH_WORKER_NICENESS = 10


def check_password_policy(secret: str, min_length: int) -> bytes:
    """The secret's UTF-8 bytes, or 400 weak_password. Checked before any hashing (PW1, PW2)."""
    encoded = secret.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_SECRET_BYTES:
        raise weak_password(f"The password is longer than {MAX_SECRET_BYTES} bytes.")
    if len(secret) < min_length:
        raise weak_password(f"The password is shorter than {min_length} characters.")
    return encoded


def bcrypt_input(secret: bytes) -> bytes:
    """What bcrypt hashes: the secret itself, or a keyed digest when it exceeds 72 bytes (PW3)."""
    if len(secret) <= BCRYPT_MAX_INPUT:
        return secret
    digest = hmac.new(_PREHASH_KEY, secret, hashlib.sha256).digest()
    return _PREHASH_MARKER + base64.b64encode(digest)


def hash_cost(password_hash: str) -> int | None:
    match = _COST_RE.match(password_hash)
    return int(match.group(1)) if match else None


def weak_password(description: str) -> ApiError:
    return ApiError(400, "weak_password", description)


def overloaded() -> ApiError:
    return ApiError(
        503,
        "overloaded",
        "Too many sign-ins are being processed; retry shortly.",
        headers={"Retry-After": "1"},
    )


class Hasher:
    """bcrypt on a fixed pool of threads (bcrypt releases the GIL) with a bounded queue.

    Work beyond `workers + queue` outstanding hashes is refused at once with 503 overloaded
    rather than queued without end.
    """

    def __init__(self, rounds: int, workers: int | None = None, queue: int = 64) -> None:
        self.rounds = rounds
        self.workers = workers or os.cpu_count() or 1
        self.capacity = self.workers + queue
        self.outstanding = 0
        self._pool = ThreadPoolExecutor(
            max_workers=self.workers,
            thread_name_prefix="bcrypt",
            initializer=_lower_thread_priority,
        )
        self._dummy_hash: bytes | None = None

    @property
    def queue_depth(self) -> int:
        """Hashes waiting for a worker (not the ones running)."""
        return max(0, self.outstanding - self.workers)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.outstanding >= self.capacity:
            raise overloaded()
        self.outstanding += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self.outstanding -= 1

    async def hash(self, secret: bytes) -> str:
        salt = bcrypt.gensalt(self.rounds)
        hashed: bytes = await self._run(bcrypt.hashpw, bcrypt_input(secret), salt)
        return hashed.decode("ascii")

    async def verify(self, secret: bytes, password_hash: str | None) -> bool:
        """Check `secret`; with no stored hash, spend the same work on a dummy one (LG2)."""
        if password_hash is None:
            await self._run(bcrypt.checkpw, bcrypt_input(secret), await self._dummy())
            return False
        try:
            return bool(
                await self._run(bcrypt.checkpw, bcrypt_input(secret), password_hash.encode())
            )
        except ValueError:  # a malformed stored hash: refuse, never a 500
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        cost = hash_cost(password_hash)
        return cost is not None and cost < self.rounds

    async def _dummy(self) -> bytes:
        if self._dummy_hash is None:
            salt = bcrypt.gensalt(self.rounds)
            self._dummy_hash = await self._run(bcrypt.hashpw, os.urandom(16), salt)
        return self._dummy_hash

    async def warm_up(self) -> None:
        """Compute the dummy hash before the first request, so unknown users cost the same."""
        await self._dummy()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _lower_thread_priority() -> None:
    """Raise this thread's niceness (Linux sets it per thread); elsewhere, do nothing."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_WORKER_NICENESS)
