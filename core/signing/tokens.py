"""JWT access and refresh tokens: issuing and checking with PyJWT, keys chosen by `kid`."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt.algorithms import Algorithm

from core.infra.clock import Clock, system_clock
from core.signing.keys import ALLOWED_ALGORITHMS, HMAC_ALGORITHMS, Key, KeyRing, refresh_key
from core.signing.secret_file import read_or_create_secret

ACCESS = "access_token"
REFRESH = "refresh_token"
ACCESS_TYPES = ("JWT", "at+jwt")  # typ of access tokens: JWT, or RFC 9068's at+jwt
REFRESH_TYPE = "refresh+jwt"  # never a typ an access-token verifier expects
# Headers that point at a key to use: a verifier that followed them would trust the token's
# own word for who signed it (JW6). A token carrying one is refused, nothing is fetched.
KEY_POINTER_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c", "crit"})
MIN_SECRET_BYTES = 32
LEEWAY_SECONDS = 10  # clock skew between services; JW3 allows at most 30
SECRET_FILE = "jwt_secret"
VERIFIED_CACHE_SIZE = 16_384
REQUIRED_CLAIMS = ("exp", "iat", "iss", "sub", "jti", "mode")


class InvalidToken(Exception):
    """The token is malformed, forged, expired, of the wrong kind or for another issuer."""


# A compact JWS: three unpadded base64url segments (RFC 7515 §7.1). Ours are under 1 KiB.
_COMPACT = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
MAX_TOKEN_CHARS = 8192
PREPARED_KEYS = 64  # kids of prepared keys kept: a few live keys, and those since rotated


_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_BASE64URL_VALUE = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}
# The bits of a segment's last character that carry no data, by the segment's length mod 4.
_UNUSED_BITS = {0: 0, 2: 0x0F, 3: 0x03}


def _segment(text: str) -> bytes:
    """One segment's bytes (`text` matched _COMPACT's alphabet), refused unless canonical:
    one spelling per value, as PyJWT refuses since GHSA-hxm8-2xgr-2p9m, so that no second
    token string carries the same signature."""
    rest = len(text) % 4
    if rest == 1 or _BASE64URL_VALUE[text[-1]] & _UNUSED_BITS[rest]:
        raise InvalidToken("malformed segment")
    return binascii.a2b_base64(text.encode("ascii").translate(_TO_STANDARD) + b"=" * (-rest % 4))


def _base64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def parse(token: str) -> tuple[dict[str, Any], Any, bytes, bytes]:
    """(header, claims, signing input, signature) of a compact JWS, each segment decoded
    once; nothing in it is trusted yet. One regular expression checks the alphabet of all
    three segments: PyJWT's decode checks it a character at a time in a Python loop (2.15),
    about 30 µs a token, after get_unverified_header had already decoded every segment."""
    match = _COMPACT.fullmatch(token) if len(token) <= MAX_TOKEN_CHARS else None
    if match is None:
        raise InvalidToken("malformed token")
    head, body, signature = match.groups()
    try:
        # UTF-8, as RFC 7519 has it (a str to json.loads skips its guess of the encoding).
        header = json.loads(_segment(head).decode("utf-8"))
        claims = json.loads(_segment(body).decode("utf-8"))
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise InvalidToken("malformed token") from exc
    if not isinstance(header, dict):
        raise InvalidToken("malformed header")
    if not isinstance(header.get("kid", ""), str):  # as PyJWT's header check
        raise InvalidToken("the kid is not a string")
    return header, claims, token[: match.end(2)].encode("ascii"), _segment(signature)


def verified_payload(token: str) -> dict[str, Any]:
    """The claims of a token whose signature and claims were checked before (the same
    segment jwt.decode read then)."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


# A verified token as the cache keeps it: exp, mode, sid, scope, and for a refresh token
# its sub and jti (None where absent).
Entry = tuple[int, Any, str | None, str | None, str | None, str | None]


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: float


def load_or_create_secret(data_dir: str | os.PathLike[str], *, create: bool = True) -> bytes:
    """The generated signing secret kept in `data_dir`, created once with owner-only access.

    SecretFileError (a ValueError naming the file) when the file there is empty or short."""
    return read_or_create_secret(
        Path(data_dir) / SECRET_FILE,
        min_bytes=MIN_SECRET_BYTES,
        what="generated JWT secret",
        create=create,
    )


def choose_algorithm(
    configured: str | None, secret: str | None, data_dir: str | os.PathLike[str]
) -> str:
    """The configured algorithm; unset, HS256 where a secret already exists (configured, or
    generated by an earlier start) so tokens and the services sharing it keep working, and
    ES256 on a new install."""
    if configured is not None:
        return configured
    if secret is not None or (Path(data_dir) / SECRET_FILE).exists():
        return "HS256"
    return "ES256"


class TokenService:
    """Signs tokens with the key ring's current key; checks them with the key their kid names."""

    def __init__(
        self,
        secret: bytes | None = None,
        *,
        algorithm: str = "HS256",
        keys: KeyRing | None = None,
        issuer: str = "vhod",
        audience: str | list[str] | None = None,
        access_type: str = "JWT",
        access_ttl: int = 900,
        refresh_ttl: int = 2_592_000,
        clock: Clock = system_clock,
        on_issue: Callable[[str], None] | None = None,
        refresh_keys: Sequence[Key] = (),
    ) -> None:
        if algorithm not in ALLOWED_ALGORITHMS:
            raise ValueError(f"jwt.algorithm must be one of {', '.join(ALLOWED_ALGORITHMS)}")
        if secret is not None and len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"jwt.secret must be at least {MIN_SECRET_BYTES} bytes")
        if keys is None and algorithm in HMAC_ALGORITHMS and secret is None:
            raise ValueError(f"jwt.algorithm {algorithm} needs jwt.secret")
        if access_type not in ACCESS_TYPES:
            raise ValueError(f"jwt.access_token_type must be one of {', '.join(ACCESS_TYPES)}")
        self.keys = keys or KeyRing(
            algorithm=algorithm,
            hmac_secret=secret,
            hmac_algorithm=algorithm if algorithm in HMAC_ALGORITHMS else "HS256",
        )
        # Refresh tokens: signed with the first of `refresh_keys`, never with a published key
        # (core.signing.keys.refresh_key); the others still verify. None given: one derived from
        # the HMAC secret, else a random one, which only this process knows (tests).
        if not refresh_keys:
            root = self.keys.hmac.signing if self.keys.hmac else secrets.token_bytes(32)
            refresh_keys = (refresh_key(root),)
        self.refresh_signer = refresh_keys[0]
        self._refresh_keys = {key.kid: key for key in refresh_keys}
        self.algorithm = algorithm
        self.issuer = issuer
        self.audience = audience
        self._audiences = {audience} if isinstance(audience, str) else set(audience or ())
        self.access_type = access_type
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.clock = clock
        self.on_issue = on_issue  # told the mode of each token issued (metrics)
        # Tokens whose signature and claims already checked out, keyed by the whole token
        # string: a second check of the same token skips the signature check but still
        # checks exp and mode. Only valid tokens enter; the size is bounded. An entry keeps
        # (exp, mode) only, not the claims: a claims dict is some fifty small objects, and
        # sixteen thousand of them replaced oldest first left Python's allocator with
        # arenas it could not give back (RSS grew for as long as new tokens came, issue 21).
        # The claims are read again from the verified payload when a caller wants them; the
        # entry also keeps the two a token check reads, sid and scope (strings the tokens of
        # one session share).
        # A refresh token's entry also keeps its sub and jti, what a refresh reads (there are
        # few refresh tokens to check, and each refresh would parse its payload again).
        self._verified: dict[str, Entry] = {}
        # The cached tokens in the order they came, a ring once full: the slot of the
        # oldest is overwritten, its entry dropped. Dropping the first key of the dict
        # instead (next(iter(...))) walks past every slot deleted before it, some 8 µs a
        # miss once the cache has turned over.
        self._order: list[str] = []
        self._oldest = 0
        # Per kid: the key, PyJWT's algorithm object for it and the key as prepared for
        # it, made once per key object (core.key_manager makes new ones as it reloads).
        self._prepared: dict[str, tuple[Key, Algorithm, Any]] = {}
        # The same to sign with, and per typ the header segment every token of the key and
        # kind starts with.
        self._signing: dict[str, tuple[Key, Algorithm, Any, dict[str, bytes]]] = {}

    def issue(
        self,
        mode: str,
        subject: str,
        user_name: str,
        *,
        session: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> IssuedToken:
        """A signed token of kind `mode`; `session` (the refresh-token family) is the access
        token's sid; `extra` claims (email_verified, …) go into access tokens only."""
        now = int(self.clock())
        ttl = self.access_ttl if mode == ACCESS else self.refresh_ttl
        jti = str(uuid.uuid4())
        claims: dict[str, Any] = {
            "sub": subject,
            "jti": jti,
            "iat": now,
            "exp": now + ttl,
            "iss": self.issuer,
            "mode": mode,
            "user_name": user_name,
        }
        if mode == ACCESS:
            # Refresh tokens carry no aud: a verifier that checks aud refuses them.
            if self.audience:
                claims["aud"] = self.audience
            if session is not None:
                claims["sid"] = session
            for name, value in (extra or {}).items():
                claims.setdefault(name, value)  # never in place of a registered claim
        # not `now`, which is rounded down
        key = self.keys.signer(self.clock()) if mode == ACCESS else self.refresh_signer
        token = self._sign(key, self.access_type if mode == ACCESS else REFRESH_TYPE, claims)
        if self.on_issue is not None:
            self.on_issue(mode)
        return IssuedToken(token=token, jti=jti, expires_at=float(now + ttl))

    def decode(self, token: str, mode: str) -> dict[str, Any]:
        """The claims of a valid token of kind `mode`; InvalidToken for anything else."""
        claims, _ = self._check(token, mode)
        return claims if claims is not None else verified_payload(token)

    def subject_and_id(self, token: str, mode: str) -> tuple[str, str]:
        """The (sub, jti) of a valid token of kind `mode`; InvalidToken for anything else."""
        claims, entry = self._check(token, mode)
        if entry[4] is not None and entry[5] is not None:
            return entry[4], entry[5]
        claims = claims if claims is not None else verified_payload(token)
        return claims["sub"], claims["jti"]

    def check(self, token: str, mode: str) -> tuple[str | None, str | None]:
        """As decode, without building the claims: the token's (sid, scope), each None
        when absent; InvalidToken unless valid."""
        _, entry = self._check(token, mode)
        return entry[2], entry[3]

    def _check(self, token: str, mode: str) -> tuple[dict[str, Any] | None, Entry]:
        """Checks the token; its claims when it had to verify it (else None), and its entry."""
        claims = None
        entry = self._verified.get(token)
        if entry is None:
            claims = self._verify(token)
            kind, sid, scope = claims["mode"], claims.get("sid"), claims.get("scope")
            refresh = kind == REFRESH
            entry = (
                claims["exp"],
                sys.intern(kind) if type(kind) is str else kind,
                sid if isinstance(sid, str) else None,
                sys.intern(scope) if isinstance(scope, str) else None,
                claims["sub"] if refresh else None,
                claims["jti"] if refresh else None,
            )
            self._remember(token, entry)
        if entry[0] + LEEWAY_SECONDS < self.clock():
            raise InvalidToken("expired")
        if entry[1] != mode:
            raise InvalidToken("wrong token kind")
        return claims, entry

    def _remember(self, token: str, entry: Entry) -> None:
        """Cache a verified token, in place of the oldest once VERIFIED_CACHE_SIZE are."""
        order = self._order
        if len(order) < VERIFIED_CACHE_SIZE:
            order.append(token)
        else:
            oldest = self._oldest
            self._verified.pop(order[oldest], None)
            order[oldest] = token
            self._oldest = (oldest + 1) % len(order)
        self._verified[token] = entry

    def _sign(self, key: Key, typ: str, claims: dict[str, Any]) -> str:
        """A compact JWS of `claims`, as jwt.encode makes it (header keys sorted, compact
        JSON), signed with PyJWT's algorithm for `key`: jwt.encode checks and converts its
        arguments on every call, some 20 µs beside the signature."""
        found = self._signing.get(key.kid)
        if found is None or found[0] is not key:
            algorithm = jwt.get_algorithm_by_name(key.algorithm)
            if len(self._signing) >= PREPARED_KEYS:
                self._signing.clear()
            prepared = algorithm.prepare_key(key.signing)
            found = self._signing[key.kid] = (key, algorithm, prepared, {})
        _, algorithm, prepared, heads = found
        head = heads.get(typ)
        if head is None:  # a key signs at most two kinds: access (its typ) or refresh
            header = {"alg": key.algorithm, "kid": key.kid, "typ": typ}
            head = heads[typ] = _base64url(json.dumps(header, separators=(",", ":")).encode())
        body = _base64url(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
        signing_input = head + b"." + body
        signature = _base64url(algorithm.sign(signing_input, prepared))
        return (signing_input + b"." + signature).decode("ascii")

    def _prepare(self, key: Key) -> tuple[Algorithm, Any]:
        """PyJWT's algorithm object for `key` and the key prepared for it, once per key."""
        found = self._prepared.get(key.kid)
        if found is None or found[0] is not key:
            algorithm = jwt.get_algorithm_by_name(key.algorithm)
            if len(self._prepared) >= PREPARED_KEYS:
                self._prepared.clear()
            found = self._prepared[key.kid] = (key, algorithm, algorithm.prepare_key(key.verifying))
        return found[1], found[2]

    def _verify(self, token: str) -> dict[str, Any]:
        """Key, signature, algorithm, issuer, audience and claim types: what never changes
        for one token. Each segment is decoded once (parse); the signature is checked with
        PyJWT's algorithm for the key, and the claims as jwt.decode checked them (required
        claims, iss, nbf), with our clock and leeway."""
        header, claims, signing_input, signature = parse(token)
        if KEY_POINTER_HEADERS.intersection(header):
            raise InvalidToken("the token names its own key")
        if header.get("b64", True) is False:  # RFC 7797's unencoded payload: never ours
            raise InvalidToken("unencoded payload")
        kid = header.get("kid")
        # Refresh tokens signed before refresh keys existed carry a published key's kid and
        # still verify with it until they expire (the key stays published that long).
        refreshing = self._refresh_keys.get(kid) if isinstance(kid, str) else None
        key = refreshing or self.keys.verifier(kid, self.clock())
        if key is None:
            raise InvalidToken("unknown kid")
        # The key decides the algorithm: an HMAC alg against a public key is refused here.
        if header.get("alg") != key.algorithm:
            raise InvalidToken("the algorithm is not the key's")
        algorithm, prepared = self._prepare(key)
        try:
            valid = algorithm.verify(signing_input, prepared, signature)
        except (ValueError, TypeError) as exc:
            raise InvalidToken("bad signature") from exc
        if not valid:
            raise InvalidToken("bad signature")
        if not isinstance(claims, dict):
            raise InvalidToken("the payload is not a JSON object")
        for name in REQUIRED_CLAIMS:
            if claims.get(name) is None:
                raise InvalidToken(f"the token has no {name}")
        if claims["iss"] != self.issuer:
            raise InvalidToken("issued by another issuer")
        # JSON allows NaN and Infinity through Python's parser; only integers are times here.
        for name in ("exp", "iat"):
            if type(claims[name]) is not int:
                raise InvalidToken(f"{name} is not an integer")
        now = self.clock()
        if claims["iat"] > now + LEEWAY_SECONDS:
            raise InvalidToken("issued in the future")
        nbf = claims.get("nbf")
        if nbf is not None and (type(nbf) is not int or nbf > now + LEEWAY_SECONDS):
            raise InvalidToken("not valid yet")
        if not isinstance(claims["sub"], str) or not isinstance(claims["jti"], str):
            raise InvalidToken("sub and jti must be strings")
        if refreshing is not None and claims["mode"] != REFRESH:
            raise InvalidToken("a refresh-token key signs refresh tokens only")
        if self._audiences and claims["mode"] == ACCESS:
            aud = claims.get("aud")
            given = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            if not any(isinstance(a, str) and a in self._audiences for a in given):
                raise InvalidToken("not for this audience")
        return claims
