"""core.domain.passkeys on each store, driven by the software authenticator: what a ceremony proves
(amr), which answers it refuses, and when a passkey may be removed."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from core.config.config_sections import WebauthnConfig
from core.domain.errors import ApiError
from core.domain.passkey_rules import has_password_or_identity, other_ways_in
from core.domain.passkeys import CHALLENGE_SECONDS, Passkeys, amr_of
from core.domain.relying_party import relying_party
from storage import Identity, Store, User
from tests.fakes.webauthn import SoftAuthenticator, b64url, unb64url

ORIGIN = "https://app.example.com"


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def passkeys_on(store: Store, clock: Clock, **options: Any) -> Passkeys:
    party = relying_party(
        WebauthnConfig(rp_id="example.com", origins=[ORIGIN]), "https://id.example.com"
    )
    return Passkeys(store, None, party, clock=clock, **options)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def new_user(store: Store, **fields: Any) -> User:
    number = len(await store.list_users(100))
    user = User(id=f"user{number}", email=f"user{number}@example.com", **fields)
    await store.create_user(user)
    return user


async def registered(passkeys: Passkeys, user: User, authenticator: SoftAuthenticator) -> str:
    options = await passkeys.registration_options(user)
    view = await passkeys.register(user, authenticator.create(options), "Phone")
    return str(view["id"])


async def refused(call: Any) -> tuple[int, str]:
    with pytest.raises(ApiError) as error:
        await call
    return error.value.status, error.value.code


def test_amr_names_the_key_by_its_signed_backup_flag_and_adds_mfa_for_verification():
    assert amr_of(backup_eligible=False, user_verified=True) == ("hwk", "mfa")
    assert amr_of(backup_eligible=True, user_verified=True) == ("swk", "mfa")
    assert amr_of(backup_eligible=False, user_verified=False) == ("hwk",)


async def test_creation_options_ask_for_a_discoverable_credential(store, clock):
    passkeys = passkeys_on(store, clock)
    user = await new_user(store)
    authenticator = SoftAuthenticator(ORIGIN)
    first = await registered(passkeys, user, authenticator)
    options = await passkeys.registration_options(user)
    assert options["rp"] == {"id": "example.com", "name": "vhod"}
    assert unb64url(options["user"]["id"]) == user.id.encode()
    selection = options["authenticatorSelection"]
    assert selection["residentKey"] == "required" and selection["userVerification"] == "preferred"
    [excluded] = options["excludeCredentials"]
    assert excluded["id"] == (await store.list_passkeys(user.id))[0].credential_id
    assert options["timeout"] == CHALLENGE_SECONDS * 1000
    assert await passkeys.count(user.id) == 1 and first


@pytest.mark.parametrize(
    ("backup_eligible", "verified", "amr"),
    [(False, True, ("hwk", "mfa")), (True, True, ("swk", "mfa")), (False, False, ("hwk",))],
)
@pytest.mark.parametrize("attestation", ["none", "packed"])
async def test_a_registered_passkey_proves_its_user(
    store, clock, backup_eligible, verified, amr, attestation
):
    passkeys = passkeys_on(store, clock)
    user = await new_user(store)
    authenticator = SoftAuthenticator(
        ORIGIN, backup_eligible=backup_eligible, user_verified=verified, attestation=attestation
    )
    await registered(passkeys, user, authenticator)
    [listed] = await passkeys.list(user.id)
    assert listed["synced"] is backup_eligible and listed["last_used"] is None
    assert listed["transports"] == ["internal", "hybrid"] and listed["name"] == "Phone"
    # Without a username: the options name no credential, the assertion names the user.
    options = await passkeys.request_options(None)
    assert options["allowCredentials"] == [] and options["rpId"] == "example.com"
    clock.now += 10
    proof = await passkeys.verify_assertion(authenticator.get(options), None)
    assert (proof.user_id, proof.amr) == (user.id, amr)
    assert (await passkeys.list(user.id))[0]["last_used"] == int(clock.now)
    # As a second factor: the user's own credentials are offered, and must be the user's.
    options = await passkeys.request_options(user.id)
    assert [c["id"] for c in options["allowCredentials"]] == [
        b64url(next(iter(authenticator.credentials)))
    ]
    assert (await passkeys.verify_assertion(authenticator.get(options), user.id)).amr == amr


async def test_bad_assertions_are_refused_with_their_codes(store, clock):
    passkeys = passkeys_on(store, clock)
    user = await new_user(store)
    authenticator = SoftAuthenticator(ORIGIN)
    await registered(passkeys, user, authenticator)

    async def answer(**forge: Any) -> dict[str, Any]:
        return authenticator.get(await passkeys.request_options(None), **forge)

    # Malformed: not a credential, broken base64, a clientDataJSON that is no JSON.
    good = await answer()
    for broken in (
        {},
        {"id": "x", "rawId": "x", "type": "public-key", "response": "no"},
        {**good, "rawId": "!!!"},
        {**good, "response": {**good["response"], "clientDataJSON": b64url(b"not json")}},
    ):
        assert await refused(passkeys.verify_assertion(broken, None)) == (
            400,
            "invalid_credential",
        )
    # A challenge vhod never gave, one given for another user, and one used already.
    options = await passkeys.request_options(None)
    assert await refused(
        passkeys.verify_assertion(
            authenticator.get({**options, "challenge": b64url(bytes(32))}), None
        )
    ) == (400, "invalid_challenge")
    theirs = await passkeys.request_options("someone-else")
    assert await refused(passkeys.verify_assertion(authenticator.get(theirs), None)) == (
        400,
        "invalid_challenge",
    )
    used = await answer()
    await passkeys.verify_assertion(copy.deepcopy(used), None)
    assert await refused(passkeys.verify_assertion(used, None)) == (400, "invalid_challenge")
    # An expired challenge.
    stale = await answer()
    clock.now += CHALLENGE_SECONDS + 1
    assert await refused(passkeys.verify_assertion(stale, None)) == (400, "invalid_challenge")
    # Another origin, a wrong key, an unknown credential, another user's credential.
    assert await refused(
        passkeys.verify_assertion(await answer(origin="https://evil.example"), None)
    ) == (
        401,
        "passkey_rejected",
    )
    wrong_key = ec.generate_private_key(ec.SECP256R1())
    assert await refused(passkeys.verify_assertion(await answer(sign_with=wrong_key), None)) == (
        401,
        "passkey_rejected",
    )
    stranger = SoftAuthenticator(ORIGIN)
    stranger.create(await passkeys.registration_options(user))  # made, never registered
    assert await refused(
        passkeys.verify_assertion(stranger.get(await passkeys.request_options(None)), None)
    ) == (401, "unknown_passkey")
    options = await passkeys.request_options("someone-else")
    assert await refused(passkeys.verify_assertion(authenticator.get(options), "someone-else")) == (
        401,
        "unknown_passkey",
    )
    # A user handle that is not the credential's user.
    forged = await answer()
    forged["response"]["userHandle"] = b64url(b"someone-else")
    assert await refused(passkeys.verify_assertion(forged, None)) == (401, "passkey_rejected")


async def test_a_counter_that_goes_back_is_refused_and_logged(store, clock, caplog):
    passkeys = passkeys_on(store, clock)
    user = await new_user(store)
    authenticator = SoftAuthenticator(ORIGIN)
    await registered(passkeys, user, authenticator)
    options = await passkeys.request_options(None)
    await passkeys.verify_assertion(authenticator.get(options, counter=5), None)
    for counter in (5, 3):  # the same count again, and a lower one: a clone
        options = await passkeys.request_options(None)
        clone = authenticator.get(options, counter=counter)
        assert await refused(passkeys.verify_assertion(clone, None)) == (401, "passkey_rejected")
    regressions = [r for r in caplog.records if "passkey_counter_regressed" in r.getMessage()]
    assert len(regressions) == 2
    assert (await store.list_passkeys(user.id))[0].sign_count == 5
    # An authenticator that counts nothing (0 every time) is not a regression.
    flat = SoftAuthenticator(ORIGIN, counting=False)
    await registered(passkeys, user, flat)
    for _ in range(2):
        options = await passkeys.request_options(None)
        assert (await passkeys.verify_assertion(flat.get(options), None)).user_id == user.id


async def test_registration_refuses_what_it_cannot_verify(store, clock):
    passkeys = passkeys_on(store, clock)
    user, other = await new_user(store), await new_user(store, phone="+79161234567")
    authenticator = SoftAuthenticator(ORIGIN)
    options = await passkeys.registration_options(user)
    made = authenticator.create(options)
    # Another user cannot finish this user's ceremony.
    assert await refused(passkeys.register(other, copy.deepcopy(made))) == (
        400,
        "invalid_challenge",
    )
    # A page on an origin that is not listed.
    elsewhere = authenticator.create(
        await passkeys.registration_options(user), origin="https://evil.example"
    )
    assert await refused(passkeys.register(user, elsewhere)) == (400, "invalid_credential")
    assert await refused(passkeys.register(user, {"id": 1})) == (400, "invalid_credential")
    assert await refused(passkeys.register(user, made, "x" * 65)) == (400, "invalid_request")
    # The authenticator is asked not to make a second credential for the account...
    await passkeys.register(user, authenticator.create(await passkeys.registration_options(user)))
    with pytest.raises(ValueError, match="InvalidStateError"):
        authenticator.create(await passkeys.registration_options(user))
    # ...and a credential id another account registered is refused.
    taken = unb64url((await store.list_passkeys(user.id))[0].credential_id)
    copied = SoftAuthenticator(ORIGIN).create(
        await passkeys.registration_options(other), credential_id=taken
    )
    assert await refused(passkeys.register(other, copied)) == (409, "passkey_exists")
    assert await store.list_passkeys(other.id) == []


async def test_the_last_way_in_is_kept(store, clock):
    passkeys = passkeys_on(store, clock)
    user = await new_user(store)  # no password, no provider: the passkey is its way in
    authenticator = SoftAuthenticator(ORIGIN)
    first = await registered(passkeys, user, authenticator)
    assert await refused(passkeys.delete(user, first)) == (409, "last_sign_in_method")
    assert await refused(passkeys.delete(user, "nope")) == (404, "passkey_not_found")
    second = await registered(passkeys, user, SoftAuthenticator(ORIGIN))
    assert await passkeys.delete(user, first) is True
    assert await refused(passkeys.delete(user, second)) == (409, "last_sign_in_method")
    # With a password, or a provider identity, the last passkey can go.
    assert has_password_or_identity(User(id="p", password_hash="$argon2id$..."))
    assert has_password_or_identity(User(id="i", identities=[Identity("vk", "1")]))
    # A verified address counts where code sign-in sends codes to it.
    phone_user = User(id="t", phone="+79161234567", phone_verified=True)
    assert other_ways_in(["phone"])(phone_user) and not other_ways_in(["email"])(phone_user)
    assert not other_ways_in(["phone"])(User(id="u", phone="+79161234567"))


async def test_an_account_holds_a_bounded_number_of_passkeys(store, clock, monkeypatch):
    monkeypatch.setattr("core.domain.passkeys.MAX_PASSKEYS", 2)
    passkeys = passkeys_on(store, clock)
    user = await new_user(store)
    for _ in range(2):
        await registered(passkeys, user, SoftAuthenticator(ORIGIN))
    assert await refused(passkeys.registration_options(user)) == (409, "too_many_passkeys")
