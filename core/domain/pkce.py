"""OAuth `state` and PKCE values (RFC 7636), from the operating system's CSPRNG."""

from __future__ import annotations

import base64
import hashlib
import secrets

STATE_BYTES = 32  # 256 bits, 43 URL-safe characters (OA1 asks for at least 128 bits)
VERIFIER_BYTES = 48  # 64 characters, inside RFC 7636's 43..128


def new_state() -> str:
    return secrets.token_urlsafe(STATE_BYTES)


def new_code_verifier() -> str:
    """RFC 7636 §4.1: 43–128 characters of [A-Za-z0-9-._~]; base64url gives a subset."""
    return secrets.token_urlsafe(VERIFIER_BYTES)


def code_challenge(verifier: str) -> str:
    """RFC 7636 §4.2, S256: base64url(sha256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
