"""TOTP (RFC 6238) codes, the enrolment QR code, the sealing of TOTP secrets and the keyed
hashes of recovery codes. Plain functions and small classes; no store, no HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import re
import secrets
from collections.abc import Sequence

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PERIOD = 30  # seconds a code stands for (RFC 6238's default, what every app assumes)
DIGITS = 6
SKEW_STEPS = 1  # a code of the step before or after now is accepted too
SECRET_BYTES = 20  # 160 bits, RFC 4226's recommended length for HMAC-SHA1
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
_RECOVERY_CHARS = 10  # about 49 bits each
MAX_CODE_INPUT = 64  # longer input is no code of ours: refused before any work
_SEAL_LABEL = b"vhod totp secrets v1"
_SEALED_PREFIX = "t1."
_NONCE_BYTES = 12


def new_secret() -> str:
    """A fresh TOTP secret, base32 without padding, as authenticator apps take it."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=")


def otpauth_uri(secret: str, account: str, issuer: str) -> str:
    """The `otpauth://totp/...` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=account, issuer_name=issuer
    )


def qr_svg(uri: str) -> str:
    """The URI as a QR code, a standalone SVG document."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", xmldecl=False, scale=4, border=2)
    return out.getvalue().decode("utf-8")


def step_at(now: float, period: int = PERIOD) -> int:
    return int(now // period)


def code_at(secret: str, step: int, digits: int = DIGITS) -> str:
    """The code of time step `step` (HOTP of the step counter, RFC 6238 section 4)."""
    return pyotp.TOTP(secret, digits=digits).generate_otp(step)


_DIGITS_ONLY = re.compile(r"[0-9]+")


def matching_step(
    secret: str, code: str, now: float, *, digits: int = DIGITS, period: int = PERIOD
) -> int | None:
    """The time step whose code `code` is, within SKEW_STEPS of now; None when none is.

    Every candidate is compared in constant time; the latest matching step wins, so that
    recording it as used refuses the earlier ones too."""
    code = code[:MAX_CODE_INPUT].strip().replace(" ", "")
    if len(code) != digits or not _DIGITS_ONLY.fullmatch(code):
        return None
    now_step = step_at(now, period)
    found = None
    for step in range(now_step - SKEW_STEPS, now_step + SKEW_STEPS + 1):
        if step >= 0 and hmac.compare_digest(code_at(secret, step, digits), code):
            found = step
    return found


class SecretSeal:
    """Encrypts TOTP secrets for the store (AES-256-GCM under keys derived from the
    key-encryption key, or where there is none from the HMAC signing secret), the user id
    bound in as associated data: a sealed secret copied onto another user's row does not
    open. Seals with the first root; opens with any, so a deployment that moves from an
    HMAC secret to a key-encryption key keeps its users' authenticators."""

    def __init__(self, roots: Sequence[bytes]) -> None:
        if not roots:
            raise ValueError("a TOTP secret seal needs at least one key")
        self._keys = [AESGCM(_derive(root)) for root in roots]

    def seal(self, secret: str, user_id: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[0].encrypt(nonce, secret.encode("ascii"), _bound(user_id))
        return _SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, user_id: str) -> str | None:
        """The secret, or None when no key opens it (a key was lost or replaced)."""
        if not sealed.startswith(_SEALED_PREFIX):
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed.removeprefix(_SEALED_PREFIX))
        except ValueError:
            return None
        for key in self._keys:
            try:
                plain = key.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _bound(user_id))
            except (InvalidTag, ValueError):
                continue
            return plain.decode("ascii")
        return None


def _derive(root: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_LABEL).derive(root)


def _bound(user_id: str) -> bytes:
    return f"totp:{user_id}".encode()


def recovery_key(codes_key: bytes) -> bytes:
    """The key of recovery-code hashes, from the one-time codes' key (core.signing.shared_keys):
    the same on every instance of the store."""
    return hmac.new(codes_key, b"vhod/recovery-codes/v1", hashlib.sha256).digest()


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    """Codes shown once to the user, as `xxxxx-xxxxx`."""
    codes = []
    for _ in range(count):
        chars = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_CHARS))
        codes.append(f"{chars[:5]}-{chars[5:]}")
    return codes


def recovery_code_hash(key: bytes, user_id: str, code: str) -> str:
    """The stored form of a recovery code: keyed (a copy of the database alone cannot try
    guesses) and bound to its user. Case, spaces and hyphens do not matter."""
    normal = re.sub(r"[\s-]", "", code[:MAX_CODE_INPUT]).lower()
    return hmac.new(key, f"recovery:{user_id}:{normal}".encode(), hashlib.sha256).hexdigest()
