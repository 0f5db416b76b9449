"""Password hashing (Argon2id, or bcrypt for legacy) in a bounded worker pool; the event loop
never waits on a hash. Hashes of either kind verify whatever is configured, and a successful
login rehashes one that is not of the configured algorithm and parameters (PW4)."""

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
from dataclasses import dataclass
from typing import Any, TypeVar

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core.domain.errors import ApiError

T = TypeVar("T")

BCRYPT_MAX_INPUT = 72
MAX_SECRET_BYTES = 1024
# Pre-hashed secrets start with 0xFF, a byte that never occurs in UTF-8, so their domain is
# disjoint from every secret bcrypt takes as it is: no long secret can collide with a short one.
_PREHASH_MARKER = b"\xff"
_PREHASH_KEY = b"vhod/bcrypt-prehash/v1"
_COST_RE = re.compile(r"^\$2[aby]\$(\d{2})\$")
# What names a hash's algorithm and parameters, without its salt and digest.
_PARAMETERS_RE = re.compile(r"^(\$2[aby]\$\d{2}\$|\$argon2id?\$v=\d+\$m=\d+,t=\d+,p=\d+\$)")
ALGORITHMS = ("argon2id", "bcrypt")
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


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id's costs. The defaults are OWASP's minimum (Password Storage Cheat Sheet): each
    hash holds `memory_kib` KiB for its whole run, so a pool of N workers holds N times it."""

    memory_kib: int = 19_456  # 19 MiB
    iterations: int = 2
    parallelism: int = 1  # lanes, each on a thread of its own within one hash

    def hasher(self) -> PasswordHasher:
        return PasswordHasher(
            time_cost=self.iterations, memory_cost=self.memory_kib, parallelism=self.parallelism
        )

    def below(self, floor: Argon2Params) -> bool:
        return self.memory_kib < floor.memory_kib or self.iterations < floor.iterations


# The configuration refuses anything weaker (core.config); tests build cheaper ones directly.
ARGON2_FLOOR = Argon2Params()


def hash_parameters(password_hash: str) -> str | None:
    """The part of a stored hash that names its algorithm and costs ("$2b$12$",
    "$argon2id$v=19$m=19456,t=2,p=1$"), or None for something else."""
    match = _PARAMETERS_RE.match(password_hash)
    return match.group(1) if match else None


def check_password(secret: bytes, password_hash: str) -> bool:
    """Whether `secret` matches a stored hash of either algorithm; anything malformed is
    False, never an exception. Blocking: call it on a hash worker."""
    if password_hash.startswith("$argon2"):
        try:
            return bool(_ARGON2_VERIFIER.verify(password_hash, secret))
        except (VerificationError, InvalidHashError, ValueError):
            return False
    try:
        return bool(bcrypt.checkpw(bcrypt_input(secret), password_hash.encode()))
    except ValueError:  # not a bcrypt hash either
        return False


# Verification reads the costs from the stored hash; the instance's own are not used.
_ARGON2_VERIFIER = PasswordHasher()


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
    """Password hashes on a fixed pool of threads with a bounded queue. Both libraries
    release the GIL while they hash, so the pool uses as many cores as it has threads.

    Work beyond `workers + queue` outstanding hashes is refused at once with 503 overloaded
    rather than queued without end. Memory is bounded too: at most `workers` Argon2 hashes
    run at once, each holding its memory cost.
    """

    def __init__(
        self,
        algorithm: str = "argon2id",
        *,
        rounds: int = 12,
        argon2: Argon2Params = ARGON2_FLOOR,
        workers: int | None = None,
        queue: int = 64,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown password algorithm {algorithm!r}")
        self.algorithm = algorithm
        self.rounds = rounds
        self.argon2 = argon2
        self._argon2 = argon2.hasher()
        self.workers = workers or os.cpu_count() or 1
        self.capacity = self.workers + queue
        self.outstanding = 0
        self.on_change: Callable[[], None] | None = None  # the queue grew or shrank
        self._pool = ThreadPoolExecutor(
            max_workers=self.workers,
            thread_name_prefix="password-hash",
            initializer=_lower_thread_priority,
        )
        self._dummy_hash: str | None = None

    @property
    def queue_depth(self) -> int:
        """Hashes waiting for a worker (not the ones running)."""
        return max(0, self.outstanding - self.workers)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.outstanding >= self.capacity:
            raise overloaded()
        self.outstanding += 1
        if self.on_change is not None:
            self.on_change()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self.outstanding -= 1
            if self.on_change is not None:
                self.on_change()

    def hash_now(self, secret: bytes) -> str:
        """A new hash of the configured algorithm; blocking (the pool and the calibration)."""
        if self.algorithm == "argon2id":
            # Argon2 takes input of any length: the 1024-byte cap (PW2) is its only bound.
            return self._argon2.hash(secret)
        hashed: bytes = bcrypt.hashpw(bcrypt_input(secret), bcrypt.gensalt(self.rounds))
        return hashed.decode("ascii")

    async def hash(self, secret: bytes) -> str:
        return await self._run(self.hash_now, secret)

    async def verify(self, secret: bytes, password_hash: str | None) -> bool:
        """Check `secret`; with no stored hash, spend the same work on a dummy one of the
        configured algorithm and costs (LG2)."""
        if password_hash is None:
            await self._run(check_password, secret, await self._dummy())
            return False
        return await self._run(check_password, secret, password_hash)

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether a hash that just verified should be replaced: another algorithm, a lower
        bcrypt cost, or Argon2 costs other than the configured ones (lower or higher: the
        memory bound holds for the configured cost)."""
        if self.algorithm == "bcrypt":
            cost = hash_cost(password_hash)
            return cost is None or cost < self.rounds
        if not password_hash.startswith("$argon2id$"):
            return True
        try:
            return self._argon2.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self._run(self.hash_now, os.urandom(16))
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
