"""A software WebAuthn authenticator and the browser around it, on `cryptography` alone.

It answers creation and request options as navigator.credentials.create() and .get() would,
in the JSON form a page sends (PublicKeyCredential.toJSON()): ES256 keys, discoverable
credentials, "none" or "packed" (self) attestation, and knobs for the flags and the counter,
so that tests can make every answer a real authenticator could give, and a few it should not.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
ES256 = -7


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Credential:
    id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    counter: int = 0


class SoftAuthenticator:
    """One authenticator with its origin (the page's): `create` and `get` take the options
    vhod answered and return what the page posts back."""

    def __init__(
        self,
        origin: str,
        *,
        user_verified: bool = True,
        backup_eligible: bool = False,
        counting: bool = True,
        attestation: str = "none",
    ) -> None:
        self.origin = origin
        self.user_verified = user_verified
        self.backup_eligible = backup_eligible
        self.counting = counting  # False: the counter stays 0, as synced passkeys do
        self.attestation = attestation
        self.credentials: dict[bytes, Credential] = {}

    def _flags(self, extra: int = 0) -> int:
        flags = UP | extra
        if self.user_verified:
            flags |= UV
        if self.backup_eligible:
            flags |= BE | BS
        return flags

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": challenge,
                "origin": origin or self.origin,
                "crossOrigin": False,
            },
            separators=(",", ":"),
        ).encode()

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        credential_id: bytes | None = None,
    ) -> dict[str, Any]:
        """A new credential; `credential_id` forces its id (a client that copies another
        credential's id into its own registration)."""
        rp_id = options["rp"]["id"]
        excluded = {unb64url(c["id"]) for c in options.get("excludeCredentials", [])}
        if excluded & set(self.credentials):
            raise ValueError("InvalidStateError: this authenticator holds an excluded credential")
        credential = Credential(
            id=credential_id or secrets.token_bytes(16),
            key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=rp_id,
            user_handle=unb64url(options["user"]["id"]),
        )
        self.credentials[credential.id] = credential
        numbers = credential.key.public_key().public_numbers()
        cose_key = {
            1: 2,  # kty: EC2
            3: ES256,
            -1: 1,  # crv: P-256
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        }
        attested = (
            bytes(16)  # aaguid: none
            + struct.pack(">H", len(credential.id))
            + credential.id
            + cbor2.dumps(cose_key)
        )
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([self._flags(AT)])
            + struct.pack(">I", credential.counter)
            + attested
        )
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        if self.attestation == "packed":  # self attestation: signed with the credential key
            signed = auth_data + hashlib.sha256(client_data).digest()
            statement: dict[str, Any] = {
                "alg": ES256,
                "sig": credential.key.sign(signed, ec.ECDSA(hashes.SHA256())),
            }
        else:
            statement = {}
        attestation_object = cbor2.dumps(
            {"fmt": self.attestation, "attStmt": statement, "authData": auth_data}
        )
        return {
            "id": b64url(credential.id),
            "rawId": b64url(credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation_object),
                "transports": ["internal", "hybrid"],
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        credential_id: bytes | None = None,
        counter: int | None = None,
        sign_with: ec.EllipticCurvePrivateKey | None = None,
    ) -> dict[str, Any]:
        """An assertion by the first (or the named) credential for the options' rp id;
        `counter` and `sign_with` forge what a cloned or a wrong key would send."""
        rp_id = options["rpId"]
        allowed = [unb64url(c["id"]) for c in options.get("allowCredentials", [])]
        candidates = [
            c
            for c in self.credentials.values()
            if c.rp_id == rp_id and (not allowed or c.id in allowed)
        ]
        if credential_id is not None:
            candidates = [c for c in candidates if c.id == credential_id]
        if not candidates:
            raise ValueError("NotAllowedError: no credential for these options")
        credential = candidates[0]
        if counter is not None:
            credential.counter = counter
        elif self.counting:
            credential.counter += 1
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([self._flags()])
            + struct.pack(">I", credential.counter)
        )
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        key = sign_with or credential.key
        signature = key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64url(credential.id),
            "rawId": b64url(credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(credential.user_handle),
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }
