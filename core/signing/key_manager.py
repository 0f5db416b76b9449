"""The signing keys of the store in an instance's key ring: loading, rotating, importing.

Rotation adds one row (the successor, with the time it starts signing) and changes nothing
else, so a failed write leaves nothing half-rotated; the generation's uniqueness makes two
instances that rotate at once add one key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization

from core.infra.clock import Clock, system_clock
from core.signing.kek import SETTING as KEK_SETTING
from core.signing.kek import KeyEncryptionKey
from core.signing.keys import (
    ASYMMETRIC_ALGORITHMS,
    EXPIRED,
    Key,
    KeyRing,
    RotationPolicy,
    generate_private_key,
    load_private_pem,
    public_jwk,
    seal,
    states,
    successor_due,
    unseal,
)
from storage.base import DuplicateError, SigningKey, StorageUnavailable, Store

log = logging.getLogger("vhod")
UNKNOWN_KID_GAP = 1.0  # seconds between store reads that unknown kids cause


@dataclass(frozen=True)
class KeyInfo:
    """One stored key as `keys list` shows it."""

    kid: str
    generation: int
    algorithm: str
    state: str
    activates_at: float
    published_until: float
    created_at: float


def refresh_interval(policy: RotationPolicy) -> float:
    """How often an instance re-reads the keys: well within the lead, so every instance
    knows a key before it signs."""
    return min(60.0, max(0.5, policy.lead / 4))


def jwks_max_age(policy: RotationPolicy) -> int:
    """Cache-Control max-age of the JWKS, smaller than the lead: a verifier's cached copy
    holds the next key before that key signs."""
    return int(min(3600, max(1, policy.lead // 4)))


class KeyManager:
    def __init__(
        self,
        store: Store,
        ring: KeyRing,
        policy: RotationPolicy,
        *,
        kek: KeyEncryptionKey | None,
        clock: Clock = system_clock,
    ) -> None:
        self.store = store
        self.ring = ring
        self.policy = policy
        self.kek = kek  # None: this instance signs with HMAC and never needs private keys
        self.clock = clock
        self.rotating = ring.algorithm in ASYMMETRIC_ALGORITHMS
        self._private: dict[str, Any] = {}  # decrypted private keys by kid
        self._undecryptable: set[str] = set()
        self._wake = asyncio.Event()
        self._last_read = -1e18  # time.monotonic() of the last read of the store
        self._records: list[SigningKey] = []  # as last read, for the metrics
        ring.on_unknown_kid = self._unknown_kid

    async def start(self) -> None:
        """Load the keys; when signing asymmetrically, add the first key if there is none.

        core.signing.kek.UndecryptableKey when a live key's private part does not decrypt: the start
        stops there, and nothing is written."""
        await self.refresh(strict=True)
        if self.rotating:
            await self.rotate_if_due()

    async def refresh(self, *, strict: bool = False) -> list[SigningKey]:
        records = await self.store.list_signing_keys()
        now = self.clock()
        keys = []
        for record, state, until in states(records, now, self.policy.retention):
            if state == EXPIRED:
                self._private.pop(record.kid, None)
                continue
            keys.append(self._key(record, until, strict=strict))
        self.ring.load(keys)
        self._last_read = time.monotonic()
        self._records = records
        return records

    def schedule(self) -> tuple[float, float] | None:
        """(seconds the current key has signed, seconds until the next key signs), from the
        keys as last read (no store read: the metrics ask at every scrape); None when
        tokens are signed with an HMAC secret, or before the first key is read."""
        if not self.rotating:
            return None
        now = self.clock()
        started = [r.activates_at for r in self._records if r.activates_at <= now]
        if not started:
            return None
        current = max(started)
        waiting = [r.activates_at for r in self._records if r.activates_at > now]
        # With no successor yet, one is made to sign at the end of the interval, or a lead
        # from now when that is already past (successor_due).
        following = (
            min(waiting) if waiting else max(current + self.policy.interval, now + self.policy.lead)
        )
        return now - current, following - now

    def _key(self, record: SigningKey, until: float, *, strict: bool) -> Key:
        public = serialization.load_pem_public_key(record.public_key.encode("ascii"))
        signing = self._private.get(record.kid)
        if signing is None and self.kek is not None:
            try:
                signing = self._private[record.kid] = unseal(record, self.kek)
            except ValueError:
                if strict:
                    raise
                # Another instance wrote it with another KEK: verify with it, sign with the
                # keys this instance has, and say so loudly (once per key).
                if record.kid not in self._undecryptable:
                    self._undecryptable.add(record.kid)
                    log.error(
                        "signing key %s does not decrypt with this instance's %s",
                        record.kid,
                        KEK_SETTING,
                    )
        return Key(
            kid=record.kid,
            algorithm=record.algorithm,
            verifying=public,
            signing=signing,
            jwk=public_jwk(record.algorithm, public, record.kid),
            activates_at=record.activates_at,
            published_until=until,
        )

    async def rotate_if_due(self, *, force: bool = False, algorithm: str | None = None) -> bool:
        """Add a successor key when the schedule (or `force`) asks for one. True when this
        call added it; False when none was due or another instance added it first."""
        algorithm = algorithm or self.ring.algorithm
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise ValueError(f"keys are made for {', '.join(ASYMMETRIC_ALGORITHMS)} only")
        records = await self.store.list_signing_keys()
        now = self.clock()
        activates_at = successor_due(records, now, self.policy, algorithm, force=force)
        if activates_at is None:
            await self.refresh()
            return False
        return await self._add(generate_private_key(algorithm), records, activates_at, now)

    async def import_pem(self, pem: bytes, password: bytes | None = None) -> SigningKey:
        """Add an existing private key as the next key: published now, signing after the lead."""
        _, private_key = load_private_pem(pem, password)
        records = await self.store.list_signing_keys()
        now = self.clock()
        latest = max((r.activates_at for r in records), default=now)
        if not await self._add(private_key, records, max(now + self.policy.lead, latest), now):
            raise ValueError("another key was added at the same moment: run the import again")
        return max(await self.store.list_signing_keys(), key=lambda r: r.generation)

    async def _add(
        self, private_key: Any, records: list[SigningKey], activates_at: float, now: float
    ) -> bool:
        if self.kek is None:
            raise ValueError("a key-encryption key is needed to store a private key")
        generation = max((r.generation for r in records), default=0) + 1
        record = seal(
            private_key, generation=generation, activates_at=activates_at, now=now, kek=self.kek
        )
        try:
            await self.store.add_signing_key(record)
        except DuplicateError:
            added = False  # another instance rotated at the same moment: use its key
        else:
            added = True
            self._private[record.kid] = private_key
            log.info(
                "signing key %s (%s) added, signs from %.0f",
                record.kid,
                record.algorithm,
                activates_at,
            )
        await self.refresh()
        return added

    async def describe(self) -> list[KeyInfo]:
        """Every stored key with its state now, for `keys list`."""
        records = await self.store.list_signing_keys()
        return [
            KeyInfo(r.kid, r.generation, r.algorithm, state, r.activates_at, until, r.created_at)
            for r, state, until in states(records, self.clock(), self.policy.retention)
        ]

    def _unknown_kid(self, kid: str) -> None:
        # Verification never reads the store; it only wakes the maintenance loop, which
        # re-reads at most once per UNKNOWN_KID_GAP.
        self._wake.set()

    async def maintain(self) -> None:
        """Forever: rotate when due, re-read the keys; a store outage is retried next time."""
        interval = refresh_interval(self.policy)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            # However many unknown kids arrive, the store is read at most once a second.
            wait = self._last_read + min(UNKNOWN_KID_GAP, interval / 4) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                if self.rotating:
                    await self.rotate_if_due()
                else:
                    await self.refresh()
            except StorageUnavailable as exc:
                log.warning("reading or rotating signing keys failed, will retry: %s", exc)
            except Exception:
                log.exception("signing key maintenance failed, will retry")

    def jwks(self) -> tuple[dict[str, Any], int]:
        """The JWK Set to publish, and how many seconds a verifier may cache it."""
        return self.ring.jwks(self.clock()), jwks_max_age(self.policy)

    def discovery(self, issuer: str, jwks_uri: str) -> dict[str, Any]:
        """OpenID-style discovery metadata: enough for middleware that finds the keys from
        the issuer URL (issuer, jwks_uri and the signing algorithms)."""
        published = {jwk["alg"] for jwk in self.ring.jwks(self.clock())["keys"]}
        if self.ring.algorithm in ASYMMETRIC_ALGORITHMS:
            published.add(self.ring.algorithm)
        return {
            "issuer": issuer,
            "jwks_uri": jwks_uri,
            "id_token_signing_alg_values_supported": sorted(published),
            "token_endpoint_auth_signing_alg_values_supported": sorted(published),
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "jti",
                "sid",
                "mode",
                "user_name",
            ],
        }
