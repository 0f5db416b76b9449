"""Data for a run: users bulk-loaded through the store's own loader, tokens vhod issued.

Nothing here writes rows or documents itself, and nothing signs a token: users go in
through Store.bulk_insert_users, tokens come from the server under test, so the seed
follows whatever the store's schema and the server's keys are.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.loadgen import read_response
from storage import User, open_store

DOMAIN = "bench.example"
BATCH = 10_000  # users per bulk_insert_users call


def user_email(prefix: str, n: int) -> str:
    return f"{prefix}{n}@{DOMAIN}"


def bulk_users(prefix: str, start: int, stop: int, hashed: str) -> Iterator[User]:
    """Users `start`..`stop-1` as the store keeps them (normal email and E.164 phone)."""
    for n in range(start, stop):
        yield User(
            id=uuid.uuid4().hex,
            email=user_email(prefix, n),
            phone=f"+79{n:09d}",
            password_hash=hashed,
            created_at=time.time(),
        )


def seed_users(
    storage_url: str, start: int, stop: int, hashed: str, budget: float = float("inf")
) -> tuple[int, float]:
    """Store users u{start}..u{stop-1} in batches, within `budget` seconds.

    Returns how many users are stored in all (start + inserted) and the seconds it took."""

    async def load() -> tuple[int, float]:
        began = time.perf_counter()
        store = await open_store(storage_url)
        stored = start
        try:
            users = bulk_users("u", start, stop, hashed)
            while batch := list(itertools.islice(users, BATCH)):
                await store.bulk_insert_users(batch)
                stored += len(batch)
                if time.perf_counter() - began > budget:
                    break
        finally:
            await store.close()
        return stored, time.perf_counter() - began

    return asyncio.run(load())


def lookup_median_us(storage_url: str, emails: list[str]) -> float:
    """The median time of the store's own find_user_by_email, from this process."""

    async def measure() -> float:
        store = await open_store(storage_url)
        try:
            times = []
            for email in emails:
                began = time.perf_counter()
                found = await store.find_user_by_email(email)
                times.append(time.perf_counter() - began)
                if found is None:
                    raise RuntimeError(f"bulk-loaded user {email} is missing")
            return statistics.median(times) * 1e6
        finally:
            await store.close()

    return asyncio.run(measure())


def collect_access_tokens(
    port: int, refresh: str, count: int, path: Path, connections: int = 8
) -> Path:
    """`count` distinct access tokens from vhod's /validate/jwt/refresh, one a line in `path`.

    Each refresh answers a new access token (its own jti), signed as the server signs, so
    the benchmark needs neither the server's key nor its algorithm."""
    request = (
        f"GET /validate/jwt/refresh HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {refresh}\r\n\r\n"
    ).encode()
    tokens: set[str] = set()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while len(tokens) < count:
                writer.write(request)
                status, body = await read_response(reader)
                if status != 200:
                    raise RuntimeError(f"refresh answered {status}: {body[:200]!r}")
                tokens.add(json.loads(body)["access"])
        finally:
            writer.close()

    async def collect() -> None:
        await asyncio.gather(*(connection() for _ in range(connections)))

    asyncio.run(collect())
    path.write_text("".join(token + "\n" for token in itertools.islice(tokens, count)))
    return path
