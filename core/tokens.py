"""JWT access and refresh tokens: issuing and checking, with PyJWT and an algorithm allow-list."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from core.clock import Clock, system_clock

ACCESS = "access_token"
REFRESH = "refresh_token"
ALLOWED_ALGORITHMS = ("HS256", "HS384", "HS512")
MIN_SECRET_BYTES = 32
LEEWAY_SECONDS = 10  # clock skew between services; JW3 allows at most 30
SECRET_FILE = "jwt_secret"
VERIFIED_CACHE_SIZE = 16_384


class InvalidToken(Exception):
    """The token is malformed, forged, expired, of the wrong kind or for another issuer."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: float


def load_or_create_secret(data_dir: str | os.PathLike[str]) -> bytes:
    """The generated signing secret kept in `data_dir`, created once with owner-only access."""
    path = Path(data_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # owner only (D19)
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(48).encode("ascii")
    try:
        # O_EXCL: when two processes start at once, one writes and the other reads its value.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(value)
    return value


class TokenService:
    """Signs and checks tokens with one key and one algorithm."""

    def __init__(
        self,
        secret: bytes,
        *,
        algorithm: str = "HS256",
        issuer: str = "vhod",
        access_ttl: int = 900,
        refresh_ttl: int = 2_592_000,
        clock: Clock = system_clock,
        on_issue: Callable[[str], None] | None = None,
    ) -> None:
        if algorithm not in ALLOWED_ALGORITHMS:
            raise ValueError(f"jwt.algorithm must be one of {', '.join(ALLOWED_ALGORITHMS)}")
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"jwt.secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self.algorithm = algorithm
        self.issuer = issuer
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.clock = clock
        self.on_issue = on_issue  # told the mode of each token issued (metrics)
        # Tokens whose signature and claims already checked out, keyed by the whole token
        # string: a second check of the same token skips the HMAC and the JSON parsing but
        # still checks exp and mode. Only valid tokens enter, and the size is bounded.
        self._verified: dict[str, dict[str, Any]] = {}

    def issue(self, mode: str, subject: str, user_name: str) -> IssuedToken:
        now = int(self.clock())
        ttl = self.access_ttl if mode == ACCESS else self.refresh_ttl
        jti = str(uuid.uuid4())
        claims = {
            "sub": subject,
            "jti": jti,
            "iat": now,
            "exp": now + ttl,
            "iss": self.issuer,
            "mode": mode,
            "user_name": user_name,
        }
        token = jwt.encode(claims, self._secret, algorithm=self.algorithm)
        if self.on_issue is not None:
            self.on_issue(mode)
        return IssuedToken(token=token, jti=jti, expires_at=float(now + ttl))

    def decode(self, token: str, mode: str) -> dict[str, Any]:
        """The claims of a valid token of kind `mode`; InvalidToken for anything else."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify(token)
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                # Oldest first (dicts keep insertion order): cheap, and bounded.
                del self._verified[next(iter(self._verified))]
            self._verified[token] = claims
        if claims["exp"] + LEEWAY_SECONDS < self.clock():
            raise InvalidToken("expired")
        if claims["mode"] != mode:
            raise InvalidToken("wrong token kind")
        return dict(claims)

    def _verify(self, token: str) -> dict[str, Any]:
        """Signature, algorithm, issuer and claim types: what never changes for one token."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                # exp is checked in decode() against our clock, on every call.
                options={
                    "require": ["exp", "iat", "iss", "sub", "jti", "mode"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidToken(str(exc)) from exc
        exp = claims["exp"]
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise InvalidToken("exp is not a number")
        if not isinstance(claims["sub"], str) or not isinstance(claims["jti"], str):
            raise InvalidToken("sub and jti must be strings")
        return claims
