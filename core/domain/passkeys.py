"""Passkeys (WebAuthn): registering them to a signed-in account, listing and removing them,
and signing in with one, without a username.

py_webauthn checks the ceremonies (challenge, origin, relying party id hash, user presence,
signature, attestation); this module keeps what it cannot: the challenges, single use and
five minutes long, in the store (so that any instance on it can finish a ceremony another
one began), the credentials, and the signature counter.

How a proof is named (RFC 8176 `amr`): the authenticator data's backup-eligibility flag
(BE), which the authenticator signs, says whether the private key can leave the device.
A backup-eligible credential (a synced passkey: iCloud Keychain, Google Password Manager, a
password manager) is "swk", a software-secured key, as its key is copied through software
sync; a device-bound credential (a security key, a platform authenticator that keeps its
key in a TPM or secure enclave) is "hwk". The attachment and transports a browser reports
are not signed, so they decide nothing. User verification (a PIN or a biometric, the UV
flag) adds "mfa": the passkey was something the user has and something they know or are.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from core.config import Config
from core.domain.accounts import Accounts
from core.domain.claims import user_name
from core.domain.errors import ApiError
from core.domain.event_types import EventType
from core.domain.events import security_event
from core.domain.mfa import PasskeyProof, asks_second_factor
from core.domain.passkey_rules import (
    MAX_PASSKEYS,
    has_password_or_identity,
    invalid_challenge,
    invalid_credential,
    last_sign_in_method,
    other_ways_in,
    passkey_exists,
    passkey_name,
    passkey_not_found,
    passkey_rejected,
    passkey_view,
    too_many_passkeys,
    unknown_passkey,
)
from core.domain.relying_party import RelyingParty, relying_party
from core.infra.clock import Clock, system_clock
from core.infra.delivery import Delivery
from storage.base import DuplicateError, OneTimeCode, Passkey, Store, User

CHALLENGE_SECONDS = 300  # a ceremony's challenge works five minutes, once
CHALLENGE_BYTES = 32
MAX_CREDENTIAL_ID_BYTES = 1023  # WebAuthn's own bound
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_TRANSPORTS = frozenset(t.value for t in AuthenticatorTransport)
REGISTER, SIGN_IN = "create", "get"


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _challenge_of(credential: RegistrationCredential | AuthenticationCredential) -> str:
    """The challenge the browser signed, as the options gave it (base64url)."""
    try:
        client_data = json.loads(credential.response.client_data_json)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_credential() from exc
    challenge = client_data.get("challenge") if isinstance(client_data, dict) else None
    if not isinstance(challenge, str) or not _CHALLENGE.match(challenge):
        raise invalid_challenge()
    return challenge


def _descriptors(passkeys: Iterable[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(
            id=_b64decode(p.credential_id),
            transports=[AuthenticatorTransport(t) for t in p.transports],
        )
        for p in passkeys
    ]


def amr_of(backup_eligible: bool, user_verified: bool) -> tuple[str, ...]:
    """The module docstring says why."""
    key = "swk" if backup_eligible else "hwk"
    return (key, "mfa") if user_verified else (key,)


class Passkeys:
    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        party: RelyingParty,
        *,
        can_sign_in_otherwise: Callable[[User], bool] = has_password_or_identity,
        clock: Clock = system_clock,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.party = party
        self.can_sign_in_otherwise = can_sign_in_otherwise
        self.clock = clock

    # challenges: one-time codes of their own key, taken by the first try

    async def _new_challenge(self, ceremony: str, user_id: str | None) -> bytes:
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        now = self.clock()
        await self.store.put_code(
            OneTimeCode(
                key=f"webauthn:{ceremony}:{bytes_to_base64url(challenge)}",
                code_hash=ceremony,
                user_id=user_id or "",
                expires_at=now + CHALLENGE_SECONDS,
                created_at=now,
            )
        )
        return challenge

    async def _take_challenge(self, ceremony: str, challenge: str, user_id: str | None) -> bytes:
        """The challenge's bytes, once: the first take counts its one attempt atomically, so
        a second (here or on another instance) finds none. 400 invalid_challenge for an
        unknown, used or expired one, or one issued for another user."""
        taken = await self.store.try_code(f"webauthn:{ceremony}:{challenge}", self.clock(), 1)
        if taken is None or taken.user_id != (user_id or ""):
            raise invalid_challenge()
        return _b64decode(challenge)

    # registration

    async def count(self, user_id: str) -> int:
        return len(await self.store.list_passkeys(user_id))

    async def remove_all(self, user_id: str) -> int:
        """An operator's second-factor reset: every passkey of the user; how many went."""
        removed = 0
        for passkey in await self.store.list_passkeys(user_id):
            removed += await self.store.delete_passkey(user_id, passkey.id)
        return removed

    async def registration_options(self, user: User) -> dict[str, Any]:
        """Creation options for navigator.credentials.create(): a discoverable credential
        (so that it signs in without a username), user verification preferred, none of
        the user's passkeys again."""
        mine = await self.store.list_passkeys(user.id)
        if len(mine) >= MAX_PASSKEYS:
            raise too_many_passkeys()
        challenge = await self._new_challenge(REGISTER, user.id)
        name = user.email or user.phone or user.id
        options = generate_registration_options(
            rp_id=self.party.rp_id,
            rp_name=self.party.name,
            user_name=name,
            user_id=user.id.encode(),  # the user handle: a random id, no personal data
            user_display_name=user_name(user) or name,
            challenge=challenge,
            timeout=CHALLENGE_SECONDS * 1000,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                require_resident_key=True,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=_descriptors(mine),
        )
        parsed: dict[str, Any] = json.loads(options_to_json(options))
        return parsed

    async def register(
        self, user: User, credential: Mapping[str, Any], name: str | None = None
    ) -> dict[str, Any]:
        """Verify the browser's new credential against a challenge issued to `user`, and
        keep it. 400 invalid_challenge / invalid_credential, 409 passkey_exists."""
        label = passkey_name(name)
        try:
            parsed = parse_registration_credential_json(dict(credential))
        except Exception as exc:  # the parser raises what its input makes it: all malformed
            raise invalid_credential() from exc
        challenge = await self._take_challenge(REGISTER, _challenge_of(parsed), user.id)
        try:
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self.party.rp_id,
                expected_origin=list(self.party.origins),
            )
        except Exception as exc:  # origin, rp id, attestation, a broken key: all refused
            raise invalid_credential() from exc
        if len(verified.credential_id) > MAX_CREDENTIAL_ID_BYTES:
            raise invalid_credential()
        if await self.count(user.id) >= MAX_PASSKEYS:
            raise too_many_passkeys()
        transports = tuple(
            dict.fromkeys(t.value for t in parsed.response.transports or () if t in _TRANSPORTS)
        )
        passkey = Passkey(
            id=uuid.uuid4().hex,
            user_id=user.id,
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            name=label,
            created_at=self.clock(),
            transports=transports,
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        )
        try:
            await self.store.add_passkey(passkey)
        except DuplicateError as exc:
            raise passkey_exists() from exc
        security_event(EventType.PASSKEY_ADDED, user=user.id)
        return passkey_view(passkey)

    # the user's passkeys

    async def list(self, user_id: str) -> list[dict[str, Any]]:
        return [passkey_view(p) for p in await self.store.list_passkeys(user_id)]

    async def rename(self, user_id: str, passkey_id: str, name: str) -> dict[str, Any]:
        label = passkey_name(name)
        if not await self.store.rename_passkey(user_id, passkey_id, label):
            raise passkey_not_found()
        for passkey in await self.store.list_passkeys(user_id):
            if passkey.id == passkey_id:
                return passkey_view(passkey)
        raise passkey_not_found()  # removed meanwhile

    async def delete(self, user: User, passkey_id: str) -> bool:
        """Remove one; 409 last_sign_in_method when the account would have no way in left.
        Two removals at once of an account's last two passkeys can both pass this check
        (MongoDB has no transaction to hold it): docs/security.md says so."""
        mine = await self.store.list_passkeys(user.id)
        if not any(p.id == passkey_id for p in mine):
            raise passkey_not_found()
        if len(mine) == 1 and not self.can_sign_in_otherwise(user):
            raise last_sign_in_method()
        if not await self.store.delete_passkey(user.id, passkey_id):
            raise passkey_not_found()
        security_event(EventType.PASSKEY_REMOVED, user=user.id)
        return True

    # signing in

    async def request_options(self, user_id: str | None) -> dict[str, Any]:
        """Request options for navigator.credentials.get(): for no user (sign-in without a
        username) an empty allowCredentials, the browser offers the passkeys it has for
        this relying party; for a user (a second factor), that user's passkeys."""
        allowed = _descriptors(await self.store.list_passkeys(user_id)) if user_id else []
        challenge = await self._new_challenge(SIGN_IN, user_id)
        options = generate_authentication_options(
            rp_id=self.party.rp_id,
            challenge=challenge,
            timeout=CHALLENGE_SECONDS * 1000,
            allow_credentials=allowed,
            user_verification=UserVerificationRequirement.PREFERRED,
        )
        parsed: dict[str, Any] = json.loads(options_to_json(options))
        return parsed

    async def verify_assertion(
        self, credential: Mapping[str, Any], user_id: str | None
    ) -> PasskeyProof:
        """The proof of a navigator.credentials.get() response to request_options(user_id):
        user_id None for a sign-in without a username, else the credential must be that
        user's. 400 invalid_credential / invalid_challenge, 401 unknown_passkey /
        passkey_rejected; every refusal is a security event."""
        try:
            try:
                parsed = parse_authentication_credential_json(dict(credential))
            except Exception as exc:  # malformed in one way or another
                raise invalid_credential() from exc
            challenge = await self._take_challenge(SIGN_IN, _challenge_of(parsed), user_id)
            return await self._verify(parsed, challenge, user_id)
        except ApiError as exc:
            security_event(EventType.PASSKEY_LOGIN_FAILED, user=user_id, reason=exc.code)
            raise

    async def _verify(
        self, parsed: AuthenticationCredential, challenge: bytes, user_id: str | None
    ) -> PasskeyProof:
        raw_id = bytes_to_base64url(parsed.raw_id)
        if raw_id != parsed.id or len(parsed.raw_id) > MAX_CREDENTIAL_ID_BYTES:
            raise invalid_credential()
        passkey = await self.store.find_passkey(raw_id)
        if passkey is None or (user_id is not None and passkey.user_id != user_id):
            raise unknown_passkey()
        handle = parsed.response.user_handle
        # Without a username the user handle names the account (WebAuthn §7.2 step 6).
        if (handle is None and user_id is None) or (
            handle is not None and handle != passkey.user_id.encode()
        ):
            raise passkey_rejected()
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self.party.rp_id,
                expected_origin=list(self.party.origins),
                credential_public_key=_b64decode(passkey.public_key),
                # 0: the counter is judged below, after the signature, so that a regression
                # is logged as one and nothing unsigned is believed.
                credential_current_sign_count=0,
            )
        except Exception as exc:  # the origin, the rp id, the signature, a broken key
            raise passkey_rejected() from exc
        stored, new = passkey.sign_count, verified.new_sign_count
        if (new or stored) and new <= stored:
            security_event(EventType.PASSKEY_COUNTER_REGRESSED, user=passkey.user_id, count=new)
            raise passkey_rejected()
        if not await self.store.use_passkey(passkey.credential_id, stored, new, self.clock()):
            raise passkey_rejected()  # another assertion at this counter got there first
        backed = verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE
        return PasskeyProof(passkey.user_id, amr_of(backed, verified.user_verified))

    async def login(self, credential: Mapping[str, Any]) -> dict[str, Any]:
        """A token pair for a username-less passkey sign-in; 403 account_disabled. A passkey
        that verified the user (`mfa`) is both factors; one that did not is a first factor,
        and an account with a second factor is asked for it (core.domain.mfa)."""
        proof = await self.verify_assertion(credential, None)
        user = await self.store.get_user(proof.user_id)
        if user is None:  # deleted while the ceremony ran
            raise unknown_passkey()
        if "mfa" in proof.amr:
            self.accounts.refuse_disabled(user, "passkey_login")
            answer: dict[str, Any] = await self.accounts.open_session(user, list(proof.amr))
        else:
            answer = await self.accounts.start_session(user, "passkey_login", list(proof.amr))
            if asks_second_factor(answer):
                return answer
        security_event(EventType.LOGIN_SUCCEEDED, user=user.id, method="passkey")
        return answer


def passkeys_from(
    config: Config, store: Store, accounts: Accounts, delivery: Delivery, clock: Clock
) -> Passkeys:
    """Passkeys as the configuration sets them up: a verified address counts as a way in
    where sign-in by code sends codes to it."""
    channels = [
        channel
        for channel, on in (
            ("phone", delivery.configured("phone")),
            ("email", config.accounts.email_code_sign_in and delivery.configured("email")),
        )
        if on
    ]
    return Passkeys(
        store,
        accounts,
        relying_party(config.webauthn, config.public_url),
        can_sign_in_otherwise=other_ways_in(channels),
        clock=clock,
    )


def check_credential_param(value: Any) -> Mapping[str, Any]:
    """The `credential` parameter: a JSON object (a PublicKeyCredential's toJSON())."""
    if not isinstance(value, Mapping):
        raise invalid_credential()
    return value
