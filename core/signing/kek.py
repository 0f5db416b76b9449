"""The key-encryption key: private signing keys are kept encrypted with it (AES-256-GCM)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.signing.secret_file import read_or_create_secret

MIN_KEK_BYTES = 32
KEK_FILE = "jwt_key_encryption_key"
SETTING = "jwt.key_encryption_key"
_VERSION = "v1."
_NONCE_BYTES = 12


class UndecryptableKey(ValueError):
    """A stored private key does not decrypt with this key-encryption key."""


class KeyEncryptionKey:
    """Encrypts and decrypts private keys; the key id is bound in as associated data, so a
    ciphertext copied onto another key's row does not decrypt."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_KEK_BYTES:
            raise ValueError(f"{SETTING}: must be at least {MIN_KEK_BYTES} bytes")
        self._aead = AESGCM(_hkdf(secret, b"vhod signing keys v1"))
        # Other keys every instance with this KEK must agree on are derived from it too.
        self._refresh_root = _hkdf(secret, b"vhod refresh tokens v1")
        self._totp_root = _hkdf(secret, b"vhod totp secrets v1")

    def refresh_token_root(self) -> bytes:
        """Key material for the refresh-token signing key (core.signing.keys.refresh_key): the same
        on every instance with this KEK, and independent of the key that encrypts."""
        return self._refresh_root

    def totp_root(self) -> bytes:
        """Key material for sealing TOTP secrets (core.domain.totp.SecretSeal), independent of
        the key that encrypts private keys."""
        return self._totp_root

    def encrypt(self, plain: bytes, kid: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plain, kid.encode())
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, sealed: str, kid: str) -> bytes:
        if not sealed.startswith(_VERSION):
            raise UndecryptableKey(f"key {kid}: not a vhod-encrypted private key")
        try:
            raw = base64.urlsafe_b64decode(sealed.removeprefix(_VERSION))
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], kid.encode())
        except (InvalidTag, ValueError) as exc:
            raise UndecryptableKey(
                f"{SETTING} does not decrypt the private key of signing key {kid}"
            ) from exc


def _hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def load_kek(
    configured: str | None, data_dir: str, *, shared_store: bool, create: bool = True
) -> KeyEncryptionKey:
    """The configured key-encryption key, or one generated into `data_dir`.

    A generated one is for a single-machine install only: instances sharing a MongoDB store
    need the same key, so there it must be configured. ValueError names what is wrong.
    With `create` false no file is made (read_or_create_secret)."""
    if configured is not None:
        return KeyEncryptionKey(configured.encode())
    if shared_store:
        raise ValueError(
            f"{SETTING}: required when the storage is MongoDB, where every instance must "
            f"decrypt the same keys (set VHOD_JWT__KEY_ENCRYPTION_KEY to {MIN_KEK_BYTES} or "
            "more random bytes)"
        )
    return KeyEncryptionKey(
        read_or_create_secret(
            Path(data_dir) / KEK_FILE,
            min_bytes=MIN_KEK_BYTES,
            what="generated key-encryption key",
            create=create,
        )
    )
