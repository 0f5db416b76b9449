"""Signing keys: algorithms, key pairs, the rotation schedule, and the in-memory key ring.

A key signs from its `activates_at` until the next generation activates (RFC 7517 keys,
published in the JWKS). It is published before it signs (the lead), and stays published
after it stopped for as long as a token it signed can live (the retention). All decisions
here are pure functions of the stored keys and the time; core.signing.key_manager reads the store.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from core.signing.kek import KeyEncryptionKey
from storage.base import SigningKey

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
ASYMMETRIC_ALGORITHMS = ("ES256", "EdDSA", "RS256")
ALLOWED_ALGORITHMS = HMAC_ALGORITHMS + ASYMMETRIC_ALGORITHMS
RSA_BITS = 2048
# The kids vhod makes: 16 URL-safe characters, or "hs-" and 12 for the HMAC secret.
OUR_KID = re.compile(r"^(hs-)?[A-Za-z0-9_-]{12,16}$")

NEXT, CURRENT, RETIRED, EXPIRED = "next", "current", "retired", "expired"

# Stock verifiers fetch the JWKS again for a kid they do not know at most this often: jose's
# createRemoteJWKSet (cooldownDuration) and PyJWT's PyJWKClient (cooldown_duration), 30 s.
VERIFIER_REFETCH_SECONDS = 30
# The shortest jwt.rotation_lead those verifiers follow with no failed check. A verifier may
# fetch the JWKS just before it holds the new key: before every instance has read the key
# (core.signing.key_manager.refresh_interval, a quarter of the lead) and a cache let that copy live
# (the JWKS max-age, another quarter); it cannot fetch again for 30 s, and the key must not
# sign before then: lead >= 30 + lead/4 + lead/4, so 60 s.
MIN_ROTATION_LEAD = 60


@dataclass(frozen=True)
class RotationPolicy:
    interval: float  # how long each key signs
    lead: float  # how long a key is published before it signs
    retention: float  # how long a key stays published after it stopped signing


@dataclass(frozen=True)
class Key:
    """A key as the token service uses it: `signing` is None for a public-only key."""

    kid: str
    algorithm: str
    verifying: Any  # a cryptography public key, or the HMAC secret
    signing: Any = None
    jwk: dict[str, Any] | None = None  # the public JWK; None for HMAC
    activates_at: float = -math.inf
    published_until: float = math.inf  # end of the retention once a successor activated


def new_kid() -> str:
    return secrets.token_urlsafe(12)  # 16 characters, 96 random bits


def hmac_kid(secret: bytes) -> str:
    """A stable kid for the HMAC secret. A hash of a 32-byte random secret reveals nothing an
    HMAC-signed token does not already let one test guesses against."""
    return "hs-" + hashlib.sha256(b"vhod kid\x00" + secret).hexdigest()[:12]


REFRESH_KID_PREFIX = "rt-"


def refresh_key(root: bytes) -> Key:
    """The HMAC key refresh tokens are signed with, derived from `root` (the KEK's refresh
    material, or the HMAC secret). It is never published and never given to services: a
    refresh token verifies nowhere but here, whatever a verifier checks (not even with
    `jwt.secret`, which services may hold to check access tokens)."""
    secret = hmac.new(root, b"vhod refresh-token key v1", hashlib.sha256).digest()
    kid = REFRESH_KID_PREFIX + hashlib.sha256(b"vhod kid\x00" + secret).hexdigest()[:12]
    return Key(kid, "HS256", secret, secret)


def generate_private_key(algorithm: str) -> Any:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    raise ValueError(f"not an asymmetric algorithm: {algorithm}")


def algorithm_of(private_key: Any) -> str:
    """The JWS algorithm a private key signs with; ValueError for a key vhod does not use."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError(f"EC keys must be on P-256 (ES256), not {private_key.curve.name}")
        return "ES256"
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(private_key, rsa.RSAPrivateKey):
        if private_key.key_size < RSA_BITS:
            raise ValueError(f"RSA keys must have at least {RSA_BITS} bits")
        return "RS256"
    raise ValueError("only P-256 EC, Ed25519 and RSA private keys can be imported")


def load_private_pem(data: bytes, password: bytes | None = None) -> tuple[str, Any]:
    """(algorithm, key) of a PEM private key (PKCS#8, SEC1 or PKCS#1)."""
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a usable PEM private key: {exc}") from exc
    return algorithm_of(key), key


def seal(
    private_key: Any,
    *,
    generation: int,
    activates_at: float,
    now: float,
    kek: KeyEncryptionKey,
) -> SigningKey:
    """The stored form of a private key: the public half in PEM, the private half encrypted."""
    kid = new_kid()
    plain = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningKey(
        kid=kid,
        generation=generation,
        algorithm=algorithm_of(private_key),
        public_key=public.decode("ascii"),
        private_key=kek.encrypt(plain, kid),
        activates_at=activates_at,
        created_at=now,
    )


def unseal(record: SigningKey, kek: KeyEncryptionKey) -> Any:
    """The private key of a stored key; core.signing.kek.UndecryptableKey when the KEK is wrong."""
    return serialization.load_der_private_key(
        kek.decrypt(record.private_key, record.kid), password=None
    )


def public_jwk(algorithm: str, public_key: Any, kid: str) -> dict[str, Any]:
    """The public JWK of a key (RFC 7517): never any private member."""
    exporters: dict[str, Any] = {
        "ES256": ECAlgorithm,
        "EdDSA": OKPAlgorithm,
        "RS256": RSAAlgorithm,
    }
    jwk: dict[str, Any] = exporters[algorithm].to_jwk(public_key, as_dict=True)
    allowed = {"kty", "crv", "x", "y", "n", "e"}
    return {
        **{k: v for k, v in jwk.items() if k in allowed},
        "kid": kid,
        "alg": algorithm,
        "use": "sig",
    }


def states(
    records: Sequence[SigningKey], now: float, retention: float
) -> list[tuple[SigningKey, str, float]]:
    """(key, state, published_until) for each stored key, in generation order."""
    ordered = sorted(records, key=lambda r: r.generation)
    result = []
    for index, record in enumerate(ordered):
        successor = ordered[index + 1] if index + 1 < len(ordered) else None
        stopped = successor.activates_at if successor is not None else math.inf
        until = stopped + retention
        if record.activates_at > now:
            state = NEXT
        elif stopped > now:
            state = CURRENT
        elif until > now:
            state = RETIRED
        else:
            state = EXPIRED
        result.append((record, state, until))
    return result


def successor_due(
    records: Sequence[SigningKey],
    now: float,
    policy: RotationPolicy,
    algorithm: str,
    *,
    force: bool = False,
) -> float | None:
    """When a new key should start signing, if one should be added now; else None.

    The first key signs at once (nothing can have tokens to verify yet); later ones are
    published `lead` before they sign. A key already waiting to sign makes it None: rotation
    asks for one successor, however many instances ask."""
    if not records:
        return now
    latest = max(records, key=lambda r: r.generation)
    if latest.activates_at > now:
        return None
    if force or latest.algorithm != algorithm:
        return now + policy.lead
    if now >= latest.activates_at + policy.interval - policy.lead:
        return max(latest.activates_at + policy.interval, now + policy.lead)
    return None


class KeyRing:
    """The keys one instance signs and verifies with, in memory: no store read per token."""

    def __init__(
        self,
        *,
        algorithm: str,
        hmac_secret: bytes | None = None,
        hmac_algorithm: str = "HS256",
    ) -> None:
        self.algorithm = algorithm  # what new tokens are signed with
        self.hmac: Key | None = None
        if hmac_secret is not None:
            # The kid is written into tokens; tokens without one (issued before kids) are
            # the HMAC secret's too.
            self.hmac = Key(hmac_kid(hmac_secret), hmac_algorithm, hmac_secret, hmac_secret)
        self._keys: dict[str, Key] = {}
        self._signers: list[Key] = []  # asymmetric keys with a private part, oldest first
        # Told the kid of a token whose kid looks like ours but is unknown (core.signing.key_manager
        # rate-limits the store read it leads to).
        self.on_unknown_kid: Callable[[str], None] | None = None

    def load(self, keys: Sequence[Key]) -> None:
        """Replace the asymmetric keys (the HMAC secret, from configuration, stays)."""
        self._keys = {key.kid: key for key in keys}
        self._signers = sorted(
            (key for key in keys if key.signing is not None), key=lambda k: k.activates_at
        )

    @property
    def kids(self) -> set[str]:
        return set(self._keys)

    def signer(self, now: float) -> Key:
        """The key new tokens are signed with at `now`."""
        if self.algorithm in HMAC_ALGORITHMS:
            if self.hmac is None:
                raise RuntimeError("no HMAC secret to sign with")
            return self.hmac
        for key in reversed(self._signers):
            if key.activates_at <= now:
                return key
        if self._signers:  # clocks disagree: the earliest key has not activated here yet
            return self._signers[0]
        raise RuntimeError("no signing key is loaded")

    def verifier(self, kid: str | None, now: float) -> Key | None:
        """The key that verifies a token with this kid, if it is still published."""
        if kid is None or (self.hmac is not None and kid == self.hmac.kid):
            return self.hmac
        key = self._keys.get(kid)
        if key is None:
            if self.on_unknown_kid is not None and OUR_KID.match(kid):
                self.on_unknown_kid(kid)
            return None
        return key if now < key.published_until else None

    def jwks(self, now: float) -> dict[str, Any]:
        """The JWK Set of the published public keys: next, current and retired ones."""
        return {
            "keys": [
                key.jwk
                for key in sorted(self._keys.values(), key=lambda k: k.activates_at)
                if key.jwk is not None and now < key.published_until
            ]
        }
