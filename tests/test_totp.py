"""core.domain.totp and core.domain.mfa without HTTP: the codes against RFC 6238's own test
vectors (an implementation other than the one that verifies) and against pyotp's, the sealing of
secrets, recovery codes, and the passkey seam driven by a fake PasskeyFactor."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import jwt
import pyotp
import pytest

from core.domain.errors import ApiError
from core.domain.mfa import PasskeyFactor, PasskeyProof, combined_amr
from core.domain.totp import (
    SecretSeal,
    code_at,
    matching_step,
    new_recovery_codes,
    new_secret,
    otpauth_uri,
    qr_svg,
    recovery_code_hash,
    step_at,
)
from storage import Passkey
from storage.timing import time_calls

# RFC 6238 Appendix B, the SHA-1 rows: the seed is the ASCII of "12345678901234567890".
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("time", "expected"), RFC_VECTORS)
def test_codes_are_rfc_6238s_test_vectors(time: int, expected: str) -> None:
    assert code_at(RFC_SECRET, step_at(time), digits=8) == expected
    assert matching_step(RFC_SECRET, expected, time, digits=8) == step_at(time)
    # One step either side still matches (skew), to the step the code belongs to.
    assert matching_step(RFC_SECRET, expected, time + 30, digits=8) == step_at(time)
    assert matching_step(RFC_SECRET, expected, time - 30, digits=8) == step_at(time)
    assert matching_step(RFC_SECRET, expected, time + 60, digits=8) is None


def test_pyotp_codes_match_within_one_step_and_no_further() -> None:
    secret = new_secret()
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == 20
    now = 1_800_000_015.0
    totp = pyotp.TOTP(secret)
    assert matching_step(secret, totp.at(now), now) == step_at(now)
    assert matching_step(secret, totp.at(now - 30), now) == step_at(now) - 1
    assert matching_step(secret, totp.at(now + 30), now) == step_at(now) + 1
    for far in (-90, -60, 60, 90):
        code = totp.at(now + far)
        if code not in {totp.at(now + d) for d in (-30, 0, 30)}:  # a chance collision
            assert matching_step(secret, code, now) is None


@pytest.mark.parametrize("given", ["", "12345", "1234567", "12a456", "１２３４５６", "9" * 10_000])
def test_what_is_no_six_digit_code_never_matches(given: str) -> None:
    assert matching_step(new_secret(), given, 1_800_000_000.0) is None


def test_the_enrolment_uri_and_qr_code() -> None:
    secret = new_secret()
    uri = otpauth_uri(secret, "ann@example.com", "vhod")
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert (parsed.secret, parsed.issuer, parsed.name) == (secret, "vhod", "ann@example.com")
    svg = qr_svg(uri)
    assert svg.startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in svg


def test_a_sealed_secret_opens_only_for_its_user_and_with_a_key_of_the_seal() -> None:
    seal = SecretSeal([b"k" * 32])
    sealed = seal.seal("JBSWY3DPEHPK3PXP", "u1")
    assert "JBSWY3DPEHPK3PXP" not in sealed
    assert seal.open(sealed, "u1") == "JBSWY3DPEHPK3PXP"
    assert seal.open(sealed, "u2") is None  # copied onto another user's row
    assert SecretSeal([b"x" * 32]).open(sealed, "u1") is None
    assert seal.open("t1.!!!", "u1") is None and seal.open("plain", "u1") is None
    # A seal with a new first key still opens what the old key sealed.
    assert SecretSeal([b"n" * 32, b"k" * 32]).open(sealed, "u1") == "JBSWY3DPEHPK3PXP"


def test_recovery_codes_are_distinct_and_hashed_per_user_and_key() -> None:
    codes = new_recovery_codes()
    assert len(set(codes)) == 10 and all(len(code) == 11 and code[5] == "-" for code in codes)
    key = b"r" * 32
    one = recovery_code_hash(key, "u1", codes[0])
    assert one == recovery_code_hash(key, "u1", f" {codes[0].upper().replace('-', '')} ")
    assert one != recovery_code_hash(key, "u2", codes[0])
    assert one != recovery_code_hash(b"s" * 32, "u1", codes[0])
    assert codes[0] not in one


def test_amr_lists_each_factor_once_and_mfa() -> None:
    assert combined_amr(["pwd"], ("otp",)) == ["pwd", "otp", "mfa"]
    assert combined_amr(["otp"], ("otp",)) == ["otp", "mfa"]
    assert combined_amr([], ("hwk", "mfa")) == ["hwk", "mfa"]


class FakePasskeys:
    """A PasskeyFactor that accepts the credential {"id": "good"} as the user's."""

    def __init__(self) -> None:
        self.asked: list[tuple[Mapping[str, Any], str | None]] = []

    async def request_options(self, user_id: str | None) -> dict[str, Any]:
        return {"challenge": "c2FtcGxl", "allowCredentials": [{"id": f"cred-{user_id}"}]}

    async def verify_assertion(
        self, credential: Mapping[str, Any], user_id: str | None
    ) -> PasskeyProof:
        self.asked.append((credential, user_id))
        if credential.get("id") != "good":
            raise ApiError(400, "invalid_passkey", "The assertion does not check out.")
        return PasskeyProof(user_id=credential.get("owner", user_id) or "", amr=("hwk",))


async def test_a_passkey_answers_the_second_step(services, user) -> None:
    pair = await services.accounts.register(user["phone_number"], user["email"], "correct horse")
    user_id = jwt.decode(pair["access"], options={"verify_signature": False})["sub"]
    fake = FakePasskeys()
    checked: PasskeyFactor = fake  # it implements the protocol
    services.second_factors.passkeys = checked
    # The gate reads whether a user has passkeys from the store, with the TOTP factor.
    await services.store.add_passkey(
        Passkey("pk-1", user_id, "cred-1", "pQECAyYgASFYIA", 0, "Key", 0.0, ("usb",), False)
    )

    asked = await services.accounts.login_with_email(user["email"], "correct horse")
    assert asked["mfa_required"] is True and asked["methods"] == ["passkey"]
    assert asked["passkey_options"]["allowCredentials"] == [{"id": f"cred-{user_id}"}]
    with pytest.raises(ApiError) as wrong:
        await services.second_factors.verify(asked["mfa_token"], passkey={"id": "bad"})
    assert wrong.value.code == "invalid_passkey"
    with pytest.raises(ApiError) as other:  # a passkey of someone else proves nothing here
        await services.second_factors.verify(
            asked["mfa_token"], passkey={"id": "good", "owner": "someone-else"}
        )
    assert other.value.code == "invalid_code"
    done = await services.second_factors.verify(asked["mfa_token"], passkey={"id": "good"})
    claims = jwt.decode(done["access"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "hwk", "mfa"]
    assert [user_id] * 3 == [asked_for for _, asked_for in fake.asked]
    # Without its passkey, the same account signs in with its password alone.
    assert await services.store.delete_passkey(user_id, "pk-1")
    plain = await services.accounts.login_with_email(user["email"], "correct horse")
    assert "access" in plain


async def test_store_round_trips_of_a_password_login_with_and_without_totp(services, user, clock):
    """What the gate costs: one store call (the confirmed TOTP factor and the passkeys,
    read together) on a login without a second factor; with TOTP on, the first step stores
    the challenge instead of the session."""
    calls: list[str] = []
    # SQLite's hit_counter is its hit_counters of one key: one round trip, counted once.
    time_calls(services.store, lambda name, _seconds: name == "hit_counters" or calls.append(name))
    accounts, factors = services.accounts, services.second_factors
    pair = await accounts.register(user["phone_number"], user["email"], "correct horse")

    calls.clear()
    await accounts.login_with_email(user["email"], "correct horse")
    assert calls == [
        "find_user_by_email",
        "hit_counter",
        "second_factors",  # the gate's one read
        "add_password_session",
        "reset_counter",
    ]
    user_id = jwt.decode(pair["access"], options={"verify_signature": False})["sub"]
    account = services.mfa_account
    secret = (await account.setup_totp(await services.store.get_user(user_id)))["secret"]
    await account.confirm_totp(
        await services.store.get_user(user_id), pyotp.TOTP(secret).at(clock())
    )
    clock.advance(30)

    calls.clear()
    asked = await accounts.login_with_email(user["email"], "correct horse")
    assert calls == [
        "find_user_by_email",
        "hit_counter",
        "second_factors",
        "put_mfa_challenge",  # in place of the session
    ]
    calls.clear()
    await factors.verify(asked["mfa_token"], code=pyotp.TOTP(secret).at(clock()))
    assert calls == [
        "try_mfa_challenge",
        "hit_counter",
        "get_totp",
        "use_totp_step",
        "consume_mfa_challenge",
        "reset_counter",
        "get_user",
        "add_password_session",
    ]
