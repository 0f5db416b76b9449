"""The Store contract, run against SQLite, MongoDB over mongomock and MongoDB over the wire."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid

import pytest

from storage import (
    AuditEvent,
    DuplicateError,
    EventQuery,
    Identity,
    MfaChallenge,
    OAuthState,
    Passkey,
    RefreshToken,
    SecondFactors,
    SigningKey,
    Store,
    TotpFactor,
    User,
)
from tests.storage_fixtures import refresh_token

WINDOW = 60.0


@pytest.fixture
def now() -> float:
    # A day ahead of the wall clock: rows "expired" at the test's `now` are still in the
    # future for a server whose TTL monitor deletes by the real time.
    return time.time() + 86_400.0


def make_user(
    email: str | None = None,
    phone: str | None = None,
    identities: list[Identity] | None = None,
    *,
    password_hash: str | None = None,
    profile: dict[str, str] | None = None,
    created_at: float = 0.0,
) -> User:
    return User(
        id=uuid.uuid4().hex,
        email=email,
        phone=phone,
        password_hash=password_hash,
        identities=identities or [],
        profile=profile or {},
        created_at=created_at,
    )


def make_token(
    now: float, *, user_id: str = "u1", family: str | None = None, ttl: float = 3600
) -> RefreshToken:
    jti = uuid.uuid4().hex
    return RefreshToken(
        jti=jti, user_id=user_id, family=family or jti, expires_at=now + ttl, issued_at=now
    )


def make_state(
    now: float,
    *,
    provider: str = "vk",
    ttl: float = 600,
    code_verifier: str | None = None,
    code_hash: str | None = None,
    binding_hash: str | None = None,
    link_user: str | None = None,
) -> OAuthState:
    return OAuthState(
        state=uuid.uuid4().hex,
        provider=provider,
        expires_at=now + ttl,
        code_verifier=code_verifier,
        code_hash=code_hash,
        binding_hash=binding_hash,
        link_user=link_user,
    )


# --- users ---


async def test_ping(store: Store) -> None:
    await store.ping()


async def test_create_and_find_user(store: Store, now: float) -> None:
    user = make_user(
        "ann@example.com",
        "+79161234567",
        [Identity("vk", "123"), Identity("yandex", "ya-9")],
        password_hash="$2b$04$hash",
        profile={"first_name": "Анна", "avatar": "https://example.test/a.png"},
        created_at=now,
    )
    await store.create_user(user)

    assert await store.get_user(user.id) == user
    assert await store.find_user_by_email("ann@example.com") == user
    assert await store.find_user_by_phone("+79161234567") == user
    assert await store.find_user_by_identity("vk", "123") == user
    assert await store.find_user_by_identity("yandex", "ya-9") == user


async def test_unknown_users_are_none(store: Store) -> None:
    await store.create_user(make_user("ann@example.com", "+79161234567", [Identity("vk", "1")]))

    assert await store.get_user("nobody") is None
    assert await store.find_user_by_email("bob@example.com") is None
    assert await store.find_user_by_phone("+79990000000") is None
    assert await store.find_user_by_identity("vk", "2") is None
    assert await store.find_user_by_identity("yandex", "1") is None


async def test_missing_email_and_phone_do_not_collide(store: Store) -> None:
    users = [
        make_user(),
        make_user(),
        make_user(email="a@example.com"),
        make_user(email="b@example.com"),
        make_user(phone="+79160000001"),
        make_user(phone="+79160000002"),
        make_user(identities=[Identity("vk", "1")]),
        make_user(identities=[Identity("vk", "2")]),
    ]
    for user in users:
        await store.create_user(user)

    for user in users:
        assert await store.get_user(user.id) == user


async def test_identity_is_provider_and_subject_together(store: Store) -> None:
    users = [
        make_user(identities=[Identity("vk", "1")]),
        make_user(identities=[Identity("mailru", "1")]),
        make_user(identities=[Identity("a:b", "c")]),
        make_user(identities=[Identity("a", "b:c")]),
    ]
    for user in users:
        await store.create_user(user)

    for user in users:
        identity = user.identities[0]
        found = await store.find_user_by_identity(identity.provider, identity.subject)
        assert found is not None and found.id == user.id


async def test_link_identity_adds_it_with_when_and_as_whom(store: Store) -> None:
    user = make_user("ann@example.com", identities=[Identity("vk", "1", 5.0, "Ann V")])
    await store.create_user(user)

    linked = Identity("yandex", "y1", 10.0, "a***@ya.ru")
    assert await store.link_identity(user.id, linked) is True

    found = await store.find_user_by_identity("yandex", "y1")
    assert found is not None and found.id == user.id
    assert [(i.provider, i.subject, i.linked_at, i.display) for i in found.identities] == [
        ("vk", "1", 5.0, "Ann V"),
        ("yandex", "y1", 10.0, "a***@ya.ru"),
    ]
    assert await store.link_identity(uuid.uuid4().hex, Identity("mailru", "m1")) is False
    assert await store.find_user_by_identity("mailru", "m1") is None


async def test_link_identity_refuses_a_taken_identity_and_a_second_at_a_provider(
    store: Store,
) -> None:
    ann = make_user("ann@example.com", identities=[Identity("vk", "1")])
    bob = make_user("bob@example.com", password_hash="h")
    await store.create_user(ann)
    await store.create_user(bob)

    with pytest.raises(DuplicateError) as taken:
        await store.link_identity(bob.id, Identity("vk", "1"))
    assert taken.value.field == "identity"
    with pytest.raises(DuplicateError) as again:
        await store.link_identity(ann.id, Identity("vk", "1"))
    assert again.value.field == "identity"
    with pytest.raises(DuplicateError) as second:
        await store.link_identity(ann.id, Identity("vk", "2"))
    assert second.value.field == "provider"

    found = await store.find_user_by_identity("vk", "1")
    assert found is not None and found.id == ann.id
    assert await store.find_user_by_identity("vk", "2") is None
    bob_now = await store.get_user(bob.id)
    assert bob_now is not None and bob_now.identities == []
    # The refused second link left nothing that keeps another user from that identity.
    assert await store.link_identity(bob.id, Identity("vk", "2")) is True


async def test_concurrent_links_of_one_identity_one_wins(store: Store) -> None:
    users = [make_user(f"u{i}@example.com", password_hash="h") for i in range(8)]
    for user in users:
        await store.create_user(user)

    results = await asyncio.gather(
        *(store.link_identity(user.id, Identity("yandex", "y1")) for user in users),
        return_exceptions=True,
    )

    winners = [user for user, result in zip(users, results, strict=True) if result is True]
    assert len(winners) == 1, results
    losers = [result for result in results if result is not True]
    assert all(isinstance(r, DuplicateError) and r.field == "identity" for r in losers), losers
    found = await store.find_user_by_identity("yandex", "y1")
    assert found is not None and found.id == winners[0].id
    for user in users:
        again = await store.get_user(user.id)
        assert again is not None
        assert again.identities == ([Identity("yandex", "y1")] if user is winners[0] else [])


async def test_unlink_identity_keeps_a_way_in(store: Store) -> None:
    only = make_user(identities=[Identity("vk", "1")])
    two = make_user(identities=[Identity("vk", "2"), Identity("yandex", "2")])
    with_password = make_user(identities=[Identity("vk", "3")], password_hash="h")
    for user in (only, two, with_password):
        await store.create_user(user)

    assert await store.unlink_identity(only.id, "vk", keep_a_way_in=True) == "last"
    assert (await store.find_user_by_identity("vk", "1")) is not None
    assert await store.unlink_identity(only.id, "yandex", keep_a_way_in=True) == "not_linked"
    assert await store.unlink_identity("nobody", "vk", keep_a_way_in=True) == "not_linked"

    assert await store.unlink_identity(two.id, "vk", keep_a_way_in=True) == "unlinked"
    assert await store.find_user_by_identity("vk", "2") is None
    assert await store.unlink_identity(two.id, "yandex", keep_a_way_in=True) == "last"

    assert await store.unlink_identity(with_password.id, "vk", keep_a_way_in=True) == "unlinked"
    found = await store.get_user(with_password.id)
    assert found is not None and found.identities == []
    # Without the condition (the caller counted another way in, a passkey), the last goes.
    assert await store.unlink_identity(only.id, "vk", keep_a_way_in=False) == "unlinked"
    assert await store.find_user_by_identity("vk", "1") is None
    # An unlinked identity is free for another user.
    assert await store.link_identity(two.id, Identity("vk", "1")) is True


async def test_concurrent_unlinks_cannot_leave_no_way_in(store: Store) -> None:
    user = make_user(identities=[Identity("vk", "1"), Identity("yandex", "1")])
    await store.create_user(user)

    results = await asyncio.gather(
        store.unlink_identity(user.id, "vk", keep_a_way_in=True),
        store.unlink_identity(user.id, "yandex", keep_a_way_in=True),
    )

    assert sorted(results) == ["last", "unlinked"]
    found = await store.get_user(user.id)
    assert found is not None and len(found.identities) == 1


async def test_duplicate_email_writes_nothing(store: Store) -> None:
    await store.create_user(make_user("ann@example.com", "+79160000001"))
    loser = make_user("ann@example.com", "+79160000002", [Identity("vk", "7")])

    with pytest.raises(DuplicateError) as caught:
        await store.create_user(loser)

    assert caught.value.field == "email"
    assert await store.get_user(loser.id) is None
    assert await store.find_user_by_phone("+79160000002") is None
    assert await store.find_user_by_identity("vk", "7") is None
    # Nothing half-written blocks the phone and identity the refused user carried.
    await store.create_user(make_user("bob@example.com", "+79160000002", [Identity("vk", "7")]))


async def test_duplicate_phone_writes_nothing(store: Store) -> None:
    await store.create_user(make_user("ann@example.com", "+79160000001"))
    loser = make_user("bob@example.com", "+79160000001", [Identity("vk", "7")])

    with pytest.raises(DuplicateError) as caught:
        await store.create_user(loser)

    assert caught.value.field == "phone"
    assert await store.get_user(loser.id) is None
    assert await store.find_user_by_email("bob@example.com") is None
    assert await store.find_user_by_identity("vk", "7") is None
    await store.create_user(make_user("bob@example.com", "+79160000002", [Identity("vk", "7")]))


async def test_duplicate_phone_without_email(store: Store) -> None:
    await store.create_user(make_user(phone="+79160000001"))
    await store.create_user(make_user(identities=[Identity("vk", "1")]))

    with pytest.raises(DuplicateError) as caught:
        await store.create_user(make_user(phone="+79160000001"))

    assert caught.value.field == "phone"


async def test_duplicate_identity_writes_nothing(store: Store) -> None:
    owner = make_user(identities=[Identity("vk", "7")])
    await store.create_user(owner)
    # The colliding identity comes second, so a store that writes claims one by one has
    # to undo the first.
    loser = make_user(
        "bob@example.com", "+79160000002", [Identity("yandex", "9"), Identity("vk", "7")]
    )

    with pytest.raises(DuplicateError) as caught:
        await store.create_user(loser)

    assert caught.value.field == "identity"
    assert await store.get_user(loser.id) is None
    assert await store.find_user_by_email("bob@example.com") is None
    assert await store.find_user_by_phone("+79160000002") is None
    assert await store.find_user_by_identity("yandex", "9") is None
    found = await store.find_user_by_identity("vk", "7")
    assert found is not None and found.id == owner.id
    await store.create_user(make_user("bob@example.com", "+79160000002", [Identity("yandex", "9")]))


async def test_duplicate_names_a_field_that_collided(store: Store) -> None:
    await store.create_user(make_user("ann@example.com", "+79160000001", [Identity("vk", "1")]))

    with pytest.raises(DuplicateError) as caught:
        await store.create_user(make_user("ann@example.com", "+79160000001", [Identity("vk", "1")]))
    assert caught.value.field in ("email", "phone")

    with pytest.raises(DuplicateError) as caught:
        await store.create_user(make_user("bob@example.com", "+79160000001", [Identity("vk", "1")]))
    assert caught.value.field == "phone"


async def test_concurrent_registrations_of_one_email_one_wins(store: Store) -> None:
    users = [make_user("ann@example.com", f"+7916000{i:04d}") for i in range(12)]

    results = await asyncio.gather(
        *(store.create_user(user) for user in users), return_exceptions=True
    )

    winners = [user for user, result in zip(users, results, strict=True) if result is None]
    assert len(winners) == 1, results
    losers = [result for result in results if result is not None]
    assert all(isinstance(r, DuplicateError) and r.field == "email" for r in losers), losers
    found = await store.find_user_by_email("ann@example.com")
    assert found is not None and found.id == winners[0].id
    for user in users:
        if user is not winners[0]:
            assert await store.find_user_by_phone(user.phone or "") is None


async def test_a_user_and_its_first_token_are_created_together(store: Store, now: float) -> None:
    user = make_user("ann@example.com", "+79160000001", [Identity("vk", "1")])
    token = make_token(now, user_id=user.id)

    await store.create_user(user, token)

    assert await store.get_user(user.id) == user
    assert await refresh_token(store, token.jti) == token


async def test_a_refused_user_stores_no_first_token(store: Store, now: float) -> None:
    await store.create_user(make_user("ann@example.com", identities=[Identity("vk", "1")]))
    for loser in (
        make_user("ann@example.com"),
        make_user("bob@example.com", identities=[Identity("vk", "1")]),
    ):
        token = make_token(now, user_id=loser.id)

        with pytest.raises(DuplicateError):
            await store.create_user(loser, token)

        assert await store.get_user(loser.id) is None
        assert await refresh_token(store, token.jti) is None


async def test_set_password_hash(store: Store) -> None:
    ann = make_user("ann@example.com", password_hash="old")
    bob = make_user("bob@example.com", password_hash="bob's")
    await store.create_user(ann)
    await store.create_user(bob)

    await store.set_password_hash(ann.id, "new")

    found = await store.find_user_by_email("ann@example.com")
    assert found is not None and found.password_hash == "new"
    other = await store.get_user(bob.id)
    assert other is not None and other.password_hash == "bob's"


async def test_swap_password_hash_only_over_the_expected_hash(store: Store) -> None:
    ann = make_user("ann@example.com", password_hash="old")
    await store.create_user(ann)

    assert await store.swap_password_hash(ann.id, "not old", "mine") is False
    assert (await store.get_user(ann.id)).password_hash == "old"  # type: ignore[union-attr]
    assert await store.swap_password_hash(ann.id, "old", "new") is True
    assert (await store.get_user(ann.id)).password_hash == "new"  # type: ignore[union-attr]
    # The second of two swaps from the same hash loses.
    assert await store.swap_password_hash(ann.id, "old", "other") is False
    assert await store.swap_password_hash("nobody", "old", "new") is False
    assert (await store.get_user(ann.id)).password_hash == "new"  # type: ignore[union-attr]


async def test_a_password_session_is_stored_only_over_the_checked_hash(
    store: Store, now: float
) -> None:
    ann = make_user("ann@example.com", password_hash="checked")
    await store.create_user(ann)
    kept = make_token(now, user_id=ann.id)
    assert await store.add_password_session(kept, "checked") is True
    assert await refresh_token(store, kept.jti) == kept

    await store.set_password_hash(ann.id, "changed")
    refused = make_token(now, user_id=ann.id)
    assert await store.add_password_session(refused, "checked") is False
    assert await refresh_token(store, refused.jti) is None
    orphan = make_token(now, user_id="gone")
    assert await store.add_password_session(orphan, "checked") is False
    assert await refresh_token(store, orphan.jti) is None
    assert [t.jti for t in await store.list_live_tokens(ann.id, now)] == [kept.jti]


async def test_no_password_session_outlives_a_concurrent_change(store: Store, now: float) -> None:
    """Sessions of logins that checked the old hash, stored while a change sets the new
    hash and revokes the user's tokens: none is live afterwards (issue 21, item 3)."""
    ann = make_user("ann@example.com", password_hash="old")
    await store.create_user(ann)
    tokens = [make_token(now, user_id=ann.id) for _ in range(24)]

    logins = [store.add_password_session(token, "old") for token in tokens]
    # Logins in flight with each step of the change, and after it.
    results = await asyncio.gather(*logins[:8], store.set_password_hash(ann.id, "new"))
    results += await asyncio.gather(
        *logins[8:16], store.revoke_user_tokens(ann.id, until=now + 7200, now=now)
    )
    results += await asyncio.gather(*logins[16:])
    results = [stored for stored in results if stored is not None]
    assert await store.list_live_tokens(ann.id, now) == []
    for token, stored in zip(tokens, results, strict=True):
        found = await refresh_token(store, token.jti)
        assert (found is None) if not stored else (found is not None and found.revoked)


# --- refresh tokens ---


async def test_refresh_token_round_trip(store: Store, now: float) -> None:
    token = make_token(now)
    await store.add_refresh_token(token)

    assert await refresh_token(store, token.jti) == token
    assert await refresh_token(store, "unknown") is None


async def test_a_token_is_read_with_its_user(store: Store, now: float) -> None:
    user = make_user("ann@example.com", "+79160000001", [Identity("vk", "1")])
    token = make_token(now, user_id=user.id)
    await store.create_user(user, token)
    orphan = make_token(now, user_id="gone")
    await store.add_refresh_token(orphan)

    assert await store.get_refresh_token_and_user(token.jti) == (token, user)
    assert await store.get_refresh_token_and_user(orphan.jti) == (orphan, None)
    assert await store.get_refresh_token_and_user("unknown") is None
    await store.revoke_family(token.family, until=now + 7200, now=now)
    found = await store.get_refresh_token_and_user(token.jti)
    assert found is not None and found[0].revoked  # the family was revoked


async def test_booleans_read_back_as_booleans(store: Store, now: float) -> None:
    live = make_token(now)
    revoked = make_token(now)
    revoked.revoked = True
    await store.add_refresh_token(live)
    await store.add_refresh_token(revoked)
    updated = make_token(now)
    await store.add_refresh_token(updated)
    await store.revoke_refresh_token(updated.jti)

    for jti, expected in ((live.jti, False), (revoked.jti, True), (updated.jti, True)):
        found = await refresh_token(store, jti)
        assert found is not None
        assert found.revoked is expected


async def test_revoke_refresh_token_is_idempotent(store: Store, now: float) -> None:
    token, other = make_token(now), make_token(now)
    await store.add_refresh_token(token)
    await store.add_refresh_token(other)

    await store.revoke_refresh_token(token.jti)
    await store.revoke_refresh_token(token.jti)
    await store.revoke_refresh_token("unknown")

    found = await refresh_token(store, token.jti)
    assert found is not None and found.revoked
    untouched = await refresh_token(store, other.jti)
    assert untouched is not None and not untouched.revoked


async def test_revoke_family(store: Store, now: float) -> None:
    first = make_token(now)
    second = make_token(now, family=first.jti)
    stranger = make_token(now)
    for token in (first, second, stranger):
        await store.add_refresh_token(token)

    await store.revoke_family(first.jti, until=now + 7200, now=now)

    for token, revoked in ((first, True), (second, True), (stranger, False)):
        found = await refresh_token(store, token.jti)
        assert found is not None and bool(found.revoked) is revoked


async def test_revoke_user_tokens(store: Store, now: float) -> None:
    mine = [make_token(now, user_id="ann"), make_token(now, user_id="ann")]
    theirs = make_token(now, user_id="bob")
    for token in [*mine, theirs]:
        await store.add_refresh_token(token)

    await store.revoke_user_tokens("ann", until=now + 7200, now=now)

    for token in mine:
        found = await refresh_token(store, token.jti)
        assert found is not None and found.revoked
    found = await refresh_token(store, theirs.jti)
    assert found is not None and not found.revoked


async def test_a_revoked_family_refuses_members_stored_later(store: Store, now: float) -> None:
    """A successor that a rotation stores just after the revocation is revoked too (D4)."""
    first = make_token(now)
    await store.add_refresh_token(first)
    await store.revoke_family(first.family, until=now + 7200, now=now)
    late = make_token(now, family=first.family)
    await store.add_refresh_token(late)
    other = make_token(now)
    await store.add_refresh_token(other)

    found = await refresh_token(store, late.jti)
    assert found is not None and found.revoked is True
    untouched = await refresh_token(store, other.jti)
    assert untouched is not None and untouched.revoked is False


async def test_revoked_users_families_refuse_members_stored_later(store: Store, now: float) -> None:
    mine = make_token(now, user_id="ann")
    await store.add_refresh_token(mine)
    await store.revoke_user_tokens("ann", until=now + 7200, now=now)
    late = make_token(now, user_id="ann", family=mine.family)
    new_sign_in = make_token(now, user_id="ann")
    for token in (late, new_sign_in):
        await store.add_refresh_token(token)

    found = await refresh_token(store, late.jti)
    assert found is not None and found.revoked is True
    # A family started after the revocation (a new sign-in) is not affected.
    fresh = await refresh_token(store, new_sign_in.jti)
    assert fresh is not None and fresh.revoked is False


async def test_revoked_families_since_reports_each_way_of_revoking(
    store: Store, now: float
) -> None:
    """What the instances poll (core.domain.revocations): every family revoked at or after a time,
    however it was revoked, with the time of its latest revocation."""
    one = make_token(now, user_id="ann")
    ann = [make_token(now, user_id="ann"), make_token(now, user_id="ann")]
    bob = make_token(now, user_id="bob")
    untouched = make_token(now, user_id="cid")
    for token in [one, *ann, bob, untouched]:
        await store.add_refresh_token(token)
    assert await store.revoked_families_since(now - 100) == []

    await store.revoke_family(one.family, until=now + 7200, now=now)
    await store.revoke_user_tokens("ann", until=now + 7200, now=now + 5)
    await store.delete_user("bob", until=now + 7200, now=now + 10)

    every = dict(await store.revoked_families_since(now))
    # approx: nx-27017 keeps 15 significant digits of a float it is given in a $set
    assert every == pytest.approx(
        {
            one.family: now + 5,  # ann's too: revoked again with the others, the later time
            ann[0].family: now + 5,
            ann[1].family: now + 5,
            bob.family: now + 10,
        }
    )
    assert dict(await store.revoked_families_since(now + 6)) == pytest.approx(
        {bob.family: now + 10}
    )
    assert await store.revoked_families_since(now + 11) == []
    # Gone with the record, at its horizon.
    await store.purge_expired(now + 7201)
    assert await store.revoked_families_since(now) == []


async def test_family_revocations_are_purged_after_their_horizon(store: Store, now: float) -> None:
    first = make_token(now, ttl=10)
    await store.add_refresh_token(first)
    await store.revoke_family(first.family, until=now + 20, now=now)

    await store.purge_expired(now + 19)
    kept = make_token(now + 19, family=first.family)
    await store.add_refresh_token(kept)
    found = await refresh_token(store, kept.jti)
    assert found is not None and found.revoked is True

    await store.purge_expired(now + 21)
    after = make_token(now + 21, family=first.family)
    await store.add_refresh_token(after)
    found = await refresh_token(store, after.jti)
    assert found is not None and found.revoked is False


async def test_rotate_retires_the_token_and_stores_the_successor(store: Store, now: float) -> None:
    old = make_token(now)
    await store.add_refresh_token(old)
    successor = make_token(now, family=old.family)

    assert await store.rotate_refresh_token(old.jti, successor, now) is True

    retired = await refresh_token(store, old.jti)
    assert retired is not None and retired.replaced_by == successor.jti
    assert await refresh_token(store, successor.jti) == successor
    # The successor is itself usable and rotates on.
    third = make_token(now, family=old.family)
    assert await store.rotate_refresh_token(successor.jti, third, now) is True


async def test_rotate_twice_fails_and_stores_nothing(store: Store, now: float) -> None:
    old = make_token(now)
    await store.add_refresh_token(old)
    await store.rotate_refresh_token(old.jti, make_token(now, family=old.family), now)
    late = make_token(now, family=old.family)

    assert await store.rotate_refresh_token(old.jti, late, now) is False

    assert await refresh_token(store, late.jti) is None


async def test_rotate_refuses_unusable_tokens(store: Store, now: float) -> None:
    expired = make_token(now, ttl=-1)
    at_expiry = make_token(now, ttl=0)
    revoked = make_token(now)
    for token in (expired, at_expiry, revoked):
        await store.add_refresh_token(token)
    await store.revoke_refresh_token(revoked.jti)

    for jti in (expired.jti, at_expiry.jti, revoked.jti, "unknown"):
        successor = make_token(now)
        assert await store.rotate_refresh_token(jti, successor, now) is False
        assert await refresh_token(store, successor.jti) is None
    found = await refresh_token(store, expired.jti)
    assert found is not None and found.replaced_by is None


async def test_concurrent_rotations_one_wins(store: Store, now: float) -> None:
    old = make_token(now)
    await store.add_refresh_token(old)
    successors = [make_token(now, family=old.family) for _ in range(10)]

    results = await asyncio.gather(
        *(store.rotate_refresh_token(old.jti, s, now) for s in successors)
    )

    assert results.count(True) == 1, results
    winner = successors[results.index(True)]
    retired = await refresh_token(store, old.jti)
    assert retired is not None and retired.replaced_by == winner.jti
    for successor in successors:
        stored = await refresh_token(store, successor.jti)
        assert (stored is not None) is (successor is winner)


# --- OAuth states ---


async def test_a_found_state_stays_until_consumed_once(store: Store, now: float) -> None:
    state = make_state(now, code_verifier="verifier", binding_hash="b" * 64)
    await store.put_state(state)

    assert await store.find_state("vk", state.state, now) == state
    assert await store.find_state("vk", state.state, now) == state  # finding spends nothing
    assert await store.consume_state("vk", state.state) is True
    assert await store.consume_state("vk", state.state) is False
    assert await store.find_state("vk", state.state, now) is None


async def test_a_link_state_keeps_its_user(store: Store, now: float) -> None:
    state = make_state(now, link_user="u1")
    await store.put_state(state)

    found = await store.find_state("vk", state.state, now)
    assert found is not None and found.link_user == "u1"
    sign_in = make_state(now)
    await store.put_state(sign_in)
    other = await store.find_state("vk", sign_in.state, now)
    assert other is not None and other.link_user is None


async def test_state_found_by_its_attached_code(store: Store, now: float) -> None:
    state = make_state(now, code_verifier="verifier")
    await store.put_state(state)
    assert await store.find_state_by_code("vk", "code-hash", now) is None

    assert await store.attach_code(state.state, "vk", "code-hash", now) is True
    found = await store.find_state_by_code("vk", "code-hash", now)

    assert found is not None
    assert (found.state, found.code_verifier, found.code_hash) == (
        state.state,
        "verifier",
        "code-hash",
    )
    assert await store.consume_state("vk", state.state) is True
    assert await store.find_state_by_code("vk", "code-hash", now) is None


async def test_only_the_first_code_is_attached(store: Store, now: float) -> None:
    """D13: a replayed callback cannot attach another code to a live state."""
    state = make_state(now)
    await store.put_state(state)

    assert await store.attach_code(state.state, "vk", "first", now) is True
    assert await store.attach_code(state.state, "vk", "second", now) is False
    assert await store.find_state_by_code("vk", "second", now) is None
    found = await store.find_state("vk", state.state, now)
    assert found is not None and found.code_hash == "first"


async def test_expired_state_is_not_found(store: Store, now: float) -> None:
    state = make_state(now, ttl=-1, code_hash="code-hash")
    at_expiry = make_state(now, ttl=0)
    await store.put_state(state)
    await store.put_state(at_expiry)

    assert await store.find_state("vk", state.state, now) is None
    assert await store.find_state_by_code("vk", "code-hash", now) is None
    assert await store.find_state("vk", at_expiry.state, now) is None


async def test_state_of_another_provider_is_left_in_place(store: Store, now: float) -> None:
    state = make_state(now, provider="vk")
    await store.put_state(state)
    await store.attach_code(state.state, "vk", "code-hash", now)

    assert await store.find_state("yandex", state.state, now) is None
    assert await store.find_state_by_code("yandex", "code-hash", now) is None
    assert await store.consume_state("yandex", state.state) is False

    found = await store.find_state("vk", state.state, now)
    assert found is not None and found.state == state.state


async def test_attach_code_refusals(store: Store, now: float) -> None:
    expired = make_state(now, ttl=-1)
    live = make_state(now)
    await store.put_state(expired)
    await store.put_state(live)

    assert await store.attach_code("unknown", "vk", "h1", now) is False
    assert await store.attach_code(expired.state, "vk", "h2", now) is False
    assert await store.attach_code(live.state, "yandex", "h3", now) is False

    for code_hash in ("h1", "h2", "h3"):
        assert await store.find_state_by_code("vk", code_hash, now) is None
    found = await store.find_state("vk", live.state, now)
    assert found is not None and found.code_hash is None


async def test_concurrent_consumes_of_one_state_one_wins(store: Store, now: float) -> None:
    state = make_state(now)
    await store.put_state(state)

    results = await asyncio.gather(*(store.consume_state("vk", state.state) for _ in range(10)))

    assert sorted(results) == [False] * 9 + [True]


async def test_concurrent_attaches_one_wins(store: Store, now: float) -> None:
    state = make_state(now)
    await store.put_state(state)

    results = await asyncio.gather(
        *(store.attach_code(state.state, "vk", f"h{i}", now) for i in range(10))
    )

    assert sorted(results) == [False] * 9 + [True]


# --- counters ---


async def test_counter_counts_hits_within_a_window(store: Store, now: float) -> None:
    ends = now + WINDOW

    assert await store.hit_counter("login:ann", WINDOW, now) == (1, ends)
    assert await store.hit_counter("login:ann", WINDOW, now + 1) == (2, ends)
    assert await store.hit_counter("login:ann", WINDOW, now + WINDOW - 1) == (3, ends)
    assert await store.hit_counter("login:bob", WINDOW, now + 1) == (1, now + 1 + WINDOW)


async def test_counter_starts_a_new_window_after_the_end(store: Store, now: float) -> None:
    await store.hit_counter("k", WINDOW, now)
    await store.hit_counter("k", WINDOW, now)
    later = now + WINDOW

    assert await store.hit_counter("k", WINDOW, later) == (1, later + WINDOW)
    assert await store.hit_counter("k", WINDOW, later + 1) == (2, later + WINDOW)


async def test_counters_are_hit_together_each_in_its_own_window(store: Store, now: float) -> None:
    await store.hit_counter("hour", WINDOW, now)

    assert await store.hit_counters([("hour", WINDOW), ("day", 24 * WINDOW)], now + 1) == [
        (2, now + WINDOW),
        (1, now + 1 + 24 * WINDOW),
    ]
    assert await store.hit_counters([], now) == []


async def test_concurrent_hits_of_several_counters_each_count_once(
    store: Store, now: float
) -> None:
    keys = [("a", WINDOW), ("b", WINDOW), ("c", WINDOW)]

    results = await asyncio.gather(*(store.hit_counters(keys, now) for _ in range(8)))

    for index in range(3):
        assert sorted(counted[index][0] for counted in results) == list(range(1, 9))


async def test_reset_counter(store: Store, now: float) -> None:
    await store.hit_counter("k", WINDOW, now)
    await store.hit_counter("other", WINDOW, now)

    await store.reset_counter("k")
    await store.reset_counter("unknown")

    assert await store.hit_counter("other", WINDOW, now) == (2, now + WINDOW)
    assert await store.hit_counter("k", WINDOW, now + 1) == (1, now + 1 + WINDOW)


async def test_concurrent_hits_are_all_counted(store: Store, now: float) -> None:
    results = await asyncio.gather(*(store.hit_counter("k", WINDOW, now) for _ in range(20)))

    assert sorted(hits for hits, _ in results) == list(range(1, 21))
    assert {ends for _, ends in results} == {now + WINDOW}
    assert await store.hit_counter("k", WINDOW, now) == (21, now + WINDOW)


async def test_concurrent_hits_restart_an_ended_window_once(store: Store, now: float) -> None:
    for _ in range(5):
        await store.hit_counter("k", WINDOW, now)
    later = now + WINDOW + 1

    results = await asyncio.gather(*(store.hit_counter("k", WINDOW, later) for _ in range(10)))

    assert sorted(hits for hits, _ in results) == list(range(1, 11))
    assert {ends for _, ends in results} == {later + WINDOW}


# --- expiry ---


async def test_purge_expired_removes_only_expired_rows(store: Store, now: float) -> None:
    old_token, live_token = make_token(now, ttl=-1), make_token(now, ttl=60)
    old_state, live_state = make_state(now, ttl=-1), make_state(now, ttl=60)
    for token in (old_token, live_token):
        await store.add_refresh_token(token)
    for state in (old_state, live_state):
        await store.put_state(state)
    await store.hit_counter("old", 10, now - 20)
    await store.hit_counter("live", 10, now - 5)

    await store.purge_expired(now)

    assert await refresh_token(store, old_token.jti) is None
    assert await refresh_token(store, live_token.jti) == live_token
    # An hour later the purged state would be refused anyway; only a purge removes it.
    assert await store.find_state("vk", old_state.state, now - 3600) is None
    assert await store.find_state("vk", live_state.state, now) == live_state
    # A purged counter starts afresh even at a time its window had not ended.
    assert await store.hit_counter("old", 10, now - 15) == (1, now - 5)
    assert await store.hit_counter("live", 10, now - 1) == (2, now + 5)


# --- bulk loading ---


async def test_bulk_insert_users_stores_every_user_as_create_user_would(store: Store) -> None:
    users = [
        make_user(f"bulk{n}@example.com", f"+7916000000{n}", password_hash=f"h{n}", created_at=n)
        for n in range(3)
    ]

    await store.bulk_insert_users(users)
    await store.bulk_insert_users([])

    for user in users:
        assert await store.get_user(user.id) == user
        assert await store.find_user_by_email(user.email or "") == user
        assert await store.find_user_by_phone(user.phone or "") == user


async def test_bulk_insert_users_refuses_a_taken_email(store: Store) -> None:
    taken = make_user("taken@example.com", "+79160000001")
    await store.create_user(taken)

    with pytest.raises(DuplicateError) as refused:
        await store.bulk_insert_users([make_user("taken@example.com", "+79160000002")])

    assert refused.value.field == "email"
    assert await store.find_user_by_email("taken@example.com") == taken
    assert await store.find_user_by_phone("+79160000002") is None


async def test_bulk_insert_users_refuses_users_with_identities(store: Store) -> None:
    with_identity = make_user("a@example.com", identities=[Identity("vk", "1")])
    with pytest.raises(ValueError):
        await store.bulk_insert_users([with_identity])

    assert await store.find_user_by_email("a@example.com") is None


# --- token-signing keys ---


def make_signing_key(generation: int, now: float) -> SigningKey:
    return SigningKey(
        kid=f"kid-{generation}-{uuid.uuid4().hex[:8]}",
        generation=generation,
        algorithm="ES256",
        public_key="-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n",
        private_key="v1.encrypted",
        activates_at=now + generation * 0.25,
        created_at=now,
    )


async def test_signing_keys_round_trip_in_generation_order(store: Store, now: float) -> None:
    assert await store.list_signing_keys() == []
    second, first = make_signing_key(2, now), make_signing_key(1, now)
    await store.add_signing_key(second)
    await store.add_signing_key(first)
    assert await store.list_signing_keys() == [first, second]


async def test_concurrent_rotations_add_one_key_per_generation(store: Store, now: float) -> None:
    await store.add_signing_key(make_signing_key(1, now))
    candidates = [make_signing_key(2, now) for _ in range(8)]
    results = await asyncio.gather(
        *(store.add_signing_key(key) for key in candidates), return_exceptions=True
    )
    assert sum(result is None for result in results) == 1
    assert all(isinstance(r, DuplicateError) and r.field == "generation" for r in results if r)
    stored = await store.list_signing_keys()
    assert [key.generation for key in stored] == [1, 2]
    assert stored[1] in candidates


async def test_exchanged_provider_tokens_are_known_per_provider_until_they_expire(
    store: Store, now: float
) -> None:
    assert await store.exchanged_token_claims("vk", "a" * 64, now) is None
    await store.remember_exchanged_token("vk", "a" * 64, now + 60)
    await store.remember_exchanged_token("vk", "a" * 64, now + 600)  # a retry: no change
    assert await store.exchanged_token_claims("vk", "a" * 64, now) is not None
    assert await store.exchanged_token_claims("vk", "a" * 64, now + 59) is not None
    assert await store.exchanged_token_claims("vk", "a" * 64, now + 60) is None  # expired
    assert await store.exchanged_token_claims("yandex", "a" * 64, now) is None  # another provider's
    assert await store.exchanged_token_claims("vk", "b" * 64, now) is None
    assert await store.exchanged_token_claims("vk", "a" * 64, now) == {}  # kept without
    assert await store.exchanged_token_claims("vk", "a" * 64, now + 60) is None


async def test_an_exchanged_token_keeps_its_id_token_claims_while_it_lives(
    store: Store, now: float
) -> None:
    claims = {"sub": "tg-1", "phone_number": "971577777777", "name": "Ivan", "id": 2**53 + 1}
    await store.remember_exchanged_token("telegram", "c" * 64, now + 60, claims=claims)
    assert await store.exchanged_token_claims("telegram", "c" * 64, now) is not None
    assert await store.exchanged_token_claims("telegram", "c" * 64, now) == claims
    assert await store.exchanged_token_claims("telegram", "c" * 64, now + 60) is None
    assert await store.exchanged_token_claims("vk", "c" * 64, now) is None
    assert await store.exchanged_token_claims("telegram", "d" * 64, now) is None


# --- account lifecycle: verified flags, sessions, deletion, one-time codes ---


def make_code(now: float, *, key: str = "reset:u1", user_id: str = "u1", ttl: float = 900):
    from storage import OneTimeCode

    return OneTimeCode(
        key=key, code_hash=uuid.uuid4().hex, user_id=user_id, expires_at=now + ttl, created_at=now
    )


async def test_verified_flags_are_stored_and_set_only_for_the_current_address(
    store: Store,
) -> None:
    user = make_user("ann@example.com", "+79161234567")
    await store.create_user(user)
    fresh = await store.get_user(user.id)
    assert fresh is not None and not fresh.email_verified and not fresh.phone_verified
    assert not await store.set_verified(user.id, "email", "other@example.com")
    assert await store.set_verified(user.id, "email", "ann@example.com")
    assert await store.set_verified(user.id, "phone", "+79161234567")
    found = await store.find_user_by_email("ann@example.com")
    assert found is not None and found.email_verified and found.phone_verified
    assert not await store.set_verified("nobody", "email", "ann@example.com")
    born_verified = make_user("bob@example.com")
    born_verified.email_verified = True
    await store.create_user(born_verified)
    assert (await store.get_user(born_verified.id)).email_verified  # type: ignore[union-attr]


async def test_an_address_is_added_only_where_the_user_has_none(store: Store) -> None:
    phone_only = make_user(None, "+79161234567")
    await store.create_user(phone_only)
    other = make_user("bob@example.com")
    await store.create_user(other)

    with pytest.raises(DuplicateError):
        await store.add_address(phone_only.id, "email", "bob@example.com")
    assert await store.add_address(phone_only.id, "email", "ann@example.com")
    assert not await store.add_address(phone_only.id, "email", "ann2@example.com")
    assert not await store.add_address(phone_only.id, "phone", "+79161230000")
    assert not await store.add_address("nobody", "email", "carol@example.com")
    found = await store.find_user_by_email("ann@example.com")
    assert found is not None and found.id == phone_only.id and found.email_verified
    assert found.phone == "+79161234567"


async def test_live_tokens_are_the_sessions_with_what_they_started_with(
    store: Store, now: float
) -> None:
    first = make_token(now, user_id="u1")
    first.session_started, first.client_ip, first.user_agent = now, "203.0.113.7", "curl/8"
    second = make_token(now + 1, user_id="u1")
    second.session_started = now + 1
    revoked, expired, other = (
        make_token(now, user_id="u1"),
        make_token(now, user_id="u1", ttl=-1),
        make_token(now, user_id="u2"),
    )
    for token in (first, second, revoked, expired, other):
        await store.add_refresh_token(token)
    await store.revoke_refresh_token(revoked.jti)
    live = await store.list_live_tokens("u1", now)
    assert [t.jti for t in live] == [first.jti, second.jti]
    assert (live[0].client_ip, live[0].user_agent, live[0].session_started) == (
        "203.0.113.7",
        "curl/8",
        now,
    )
    await store.touch_refresh_token(first.jti, now + 50)
    touched = await refresh_token(store, first.jti)
    # approx: nx-27017 0.8.1 rounds a $set float to 15 digits.
    assert touched is not None and touched.last_used_at == pytest.approx(now + 50, abs=0.01)
    # A rotated token is no session of its own, its successor is; a revoked family none.
    successor = make_token(now, user_id="u1", family=first.family)
    successor.session_started = first.session_started
    assert await store.rotate_refresh_token(first.jti, successor, now)
    live = await store.list_live_tokens("u1", now)
    assert [t.jti for t in live] == [successor.jti, second.jti]
    await store.revoke_family(second.family, until=now + 3600, now=now)
    assert [t.jti for t in await store.list_live_tokens("u1", now)] == [successor.jti]


async def test_delete_user_frees_everything_of_the_user(store: Store, now: float) -> None:
    user = make_user("ann@example.com", "+79161234567", [Identity("vk", "42")])
    token = make_token(now, user_id=user.id)
    await store.create_user(user, token)
    await store.put_code(make_code(now, key=f"reset:{user.id}", user_id=user.id))
    await store.put_code(make_code(now, key="reset:someone", user_id="someone"))
    await store.delete_user(user.id, until=now + 3600, now=now)
    assert await store.get_user(user.id) is None
    assert await store.find_user_by_email("ann@example.com") is None
    assert await store.find_user_by_identity("vk", "42") is None
    assert await refresh_token(store, token.jti) is None
    assert await store.list_live_tokens(user.id, now) == []
    assert await store.try_code(f"reset:{user.id}", now, 5) is None
    assert await store.try_code("reset:someone", now, 5) is not None
    # The email, phone and identity can be registered again; deleting twice is no error.
    again = make_user("ann@example.com", "+79161234567", [Identity("vk", "42")])
    await store.create_user(again)
    await store.delete_user(user.id, until=now + 3600, now=now)
    assert (await store.find_user_by_identity("vk", "42")).id == again.id  # type: ignore[union-attr]


async def test_a_code_counts_attempts_up_to_the_limit(store: Store, now: float) -> None:
    code = make_code(now)
    await store.put_code(code)
    for attempt in (1, 2, 3):
        counted = await store.try_code(code.key, now, 3)
        assert counted is not None and counted.attempts == attempt
        assert counted.code_hash == code.code_hash and counted.user_id == "u1"
    assert await store.try_code(code.key, now, 3) is None  # void after the limit
    assert await store.try_code("reset:unknown", now, 3) is None
    expired = make_code(now, key="verify:u1", ttl=-1)
    await store.put_code(expired)
    assert await store.try_code(expired.key, now, 3) is None


async def test_a_new_code_replaces_the_old_and_a_code_is_consumed_once(
    store: Store, now: float
) -> None:
    old = make_code(now)
    await store.put_code(old)
    await store.try_code(old.key, now, 5)
    new = make_code(now)
    await store.put_code(new)
    counted = await store.try_code(new.key, now, 5)
    assert counted is not None and counted.code_hash == new.code_hash and counted.attempts == 1
    assert not await store.consume_code(new.key, old.code_hash)
    results = await asyncio.gather(*(store.consume_code(new.key, new.code_hash) for _ in range(8)))
    assert results.count(True) == 1
    await store.put_code(make_code(now, key="verify:u1"))
    await store.delete_code("verify:u1")
    assert await store.try_code("verify:u1", now, 5) is None


async def test_concurrent_attempts_never_exceed_the_limit(store: Store, now: float) -> None:
    code = make_code(now)
    await store.put_code(code)
    counted = await asyncio.gather(*(store.try_code(code.key, now, 5) for _ in range(12)))
    assert sorted(c.attempts for c in counted if c is not None) == [1, 2, 3, 4, 5]


async def test_purge_removes_expired_codes(store: Store, now: float) -> None:
    live, dead = make_code(now, key="a"), make_code(now, key="b", ttl=10)
    await store.put_code(live)
    await store.put_code(dead)
    await store.purge_expired(now + 20)
    assert await store.try_code("b", now, 5) is None
    assert await store.try_code("a", now + 20, 5) is not None


# --- the operator side: blocking, listing users, the audit log ---


async def test_disable_and_enable_a_user(store: Store) -> None:
    user = make_user("ann@example.com")
    await store.create_user(user)
    assert (await store.get_user(user.id)).disabled is False
    assert await store.set_user_disabled(user.id, True) is True
    assert (await store.find_user_by_email("ann@example.com")).disabled is True
    assert await store.set_user_disabled(user.id, False) is True
    assert (await store.get_user(user.id)).disabled is False
    assert await store.set_user_disabled("nobody", True) is False


async def test_list_users_pages_in_creation_order(store: Store) -> None:
    # Two share a creation time: the id breaks the tie, so no page repeats or skips one.
    users = [make_user(f"u{i}@example.com", created_at=100.0 + i // 2) for i in range(5)]
    for user in users:
        await store.create_user(user)
    expected = [u.id for u in sorted(users, key=lambda u: (u.created_at, u.id))]
    seen: list[str] = []
    after = None
    while True:
        page = await store.list_users(2, after)
        if not page:
            break
        assert len(page) <= 2
        seen += [u.id for u in page]
        after = (page[-1].created_at, page[-1].id)
    assert seen == expected


def make_event(time_: float, kind: str = "login_failed", **fields: object) -> AuditEvent:
    values: dict[str, object] = {
        "id": uuid.uuid4().hex,
        "time": time_,
        "type": kind,
        "ip": "127.0.0.1",
        "request_id": "r1",
        "expires_at": time_ + 3600,
    }
    values.update(fields)
    return AuditEvent(**values)  # type: ignore[arg-type]


async def test_events_round_trip_and_filter(store: Store, now: float) -> None:
    events = [
        make_event(now - 30, "registered", user_id="u1", details={"method": "email"}),
        make_event(now - 20, "login_failed", identifier="abc123", details={"failures": 3}),
        make_event(now - 10, "login_succeeded", user_id="u1"),
        make_event(now - 10, "login_succeeded", user_id="u2"),
    ]
    await store.add_events(events)
    everything = await store.list_events(EventQuery(limit=10))
    assert everything == sorted(events, key=lambda e: (e.time, e.id))
    of_u1 = await store.list_events(EventQuery(limit=10, user_id="u1"))
    assert [e.type for e in of_u1] == ["registered", "login_succeeded"]
    assert of_u1[0].details == {"method": "email"}
    failed = await store.list_events(EventQuery(limit=10, types=("login_failed",)))
    assert failed == [events[1]] and failed[0].details == {"failures": 3}
    window = await store.list_events(EventQuery(limit=10, since=now - 20, until=now - 10))
    assert window == [events[1]]
    newest = await store.list_events(EventQuery(limit=1, newest_first=True))
    assert newest == [max(events, key=lambda e: (e.time, e.id))]


async def test_events_page_by_time_and_id_both_ways(store: Store, now: float) -> None:
    events = [make_event(now + i // 2) for i in range(5)]
    await store.add_events(events)
    for newest_first in (False, True):
        expected = sorted(events, key=lambda e: (e.time, e.id), reverse=newest_first)
        seen: list[AuditEvent] = []
        after = None
        while page := await store.list_events(
            EventQuery(limit=2, after=after, newest_first=newest_first)
        ):
            seen += page
            after = (page[-1].time, page[-1].id)
        assert seen == expected


async def test_an_event_stored_twice_is_kept_once(store: Store, now: float) -> None:
    event = make_event(now)
    await store.add_events([event])
    await store.add_events([event, make_event(now + 1)])
    assert len(await store.list_events(EventQuery(limit=10))) == 2


async def test_events_with_one_fold_are_kept_once_and_counted(store: Store, now: float) -> None:
    first = make_event(now, fold="f1")
    await store.add_events([first])
    await store.add_events([make_event(now + 1, fold="f1", repeats=3), make_event(now, fold="f2")])
    await store.add_events([first])  # the same event again counts nothing
    kept = {e.fold: e for e in await store.list_events(EventQuery(limit=10))}
    assert set(kept) == {"f1", "f2"}
    assert kept["f1"] == dataclasses.replace(first, repeats=4)
    assert kept["f2"].repeats == 1
    await store.purge_expired(now + 3600)
    assert await store.list_events(EventQuery(limit=10)) == []
    # After the purge a fold starts afresh.
    await store.add_events([make_event(now + 4000, fold="f1")])
    [again] = await store.list_events(EventQuery(limit=10))
    assert again.repeats == 1


async def test_events_before_a_time_are_purged(store: Store, now: float) -> None:
    old, young = make_event(now - 100), make_event(now)
    await store.add_events([old, young])
    await store.purge_events_before(now - 50)
    assert await store.list_events(EventQuery(limit=10)) == [young]


async def test_events_are_purged_after_their_retention(store: Store, now: float) -> None:
    old, young = make_event(now - 100, expires_at=now - 1), make_event(now, expires_at=now + 60)
    await store.add_events([old, young])
    await store.purge_expired(now)
    assert await store.list_events(EventQuery(limit=10)) == [young]


async def test_a_deleted_users_events_name_only_a_pseudonym(store: Store, now: float) -> None:
    from storage.base import AuditEvent, EventQuery

    mine = AuditEvent(id="e1", time=now, type="login", user_id="u1", expires_at=now + 60)
    theirs = AuditEvent(id="e2", time=now, type="login", user_id="u2", expires_at=now + 60)
    await store.add_events([mine, theirs])
    await store.forget_user_in_events("u1", "pseudonym-1")
    events = {e.id: e for e in await store.list_events(EventQuery(limit=10))}
    assert (events["e1"].user_id, events["e1"].identifier) == (None, "pseudonym-1")
    assert events["e2"].user_id == "u2"


# ---- passkeys ------------------------------------------------------------------------------


def make_passkey(user_id: str, created_at: float, **fields: object) -> Passkey:
    values: dict[str, object] = {
        "id": uuid.uuid4().hex,
        "user_id": user_id,
        "credential_id": uuid.uuid4().hex,
        "public_key": "pQECAyYgASFYIA",
        "sign_count": 0,
        "name": "Phone",
        "created_at": created_at,
        "transports": ("internal", "hybrid"),
        "backup_eligible": True,
    }
    values.update(fields)
    return Passkey(**values)  # type: ignore[arg-type]


async def test_passkeys_round_trip_per_user_oldest_first(store: Store, now: float) -> None:
    second = make_passkey("u1", now + 1, name="Key", transports=("usb",), backup_eligible=False)
    first = make_passkey("u1", now, sign_count=7)
    other = make_passkey("u2", now)
    for passkey in (second, first, other):
        await store.add_passkey(passkey)
    assert await store.list_passkeys("u1") == [first, second]
    assert await store.list_passkeys("nobody") == []
    assert await store.find_passkey(second.credential_id) == second
    assert await store.find_passkey("unknown") is None
    # One credential belongs to one account, whoever tries to add it again.
    with pytest.raises(DuplicateError) as refused:
        await store.add_passkey(make_passkey("u2", now, credential_id=first.credential_id))
    assert refused.value.field == "credential_id"
    assert await store.list_passkeys("u2") == [other]


async def test_a_passkey_is_renamed_and_deleted_only_by_its_user(store: Store, now: float) -> None:
    passkey = make_passkey("u1", now)
    await store.add_passkey(passkey)
    assert not await store.rename_passkey("u2", passkey.id, "Stolen")
    assert not await store.delete_passkey("u2", passkey.id)
    assert await store.rename_passkey("u1", passkey.id, "Laptop")
    assert (await store.list_passkeys("u1"))[0].name == "Laptop"
    assert await store.delete_passkey("u1", passkey.id)
    assert not await store.delete_passkey("u1", passkey.id)
    assert await store.find_passkey(passkey.credential_id) is None


async def test_a_passkey_counter_moves_once_from_the_count_read(store: Store, now: float) -> None:
    passkey = make_passkey("u1", now, sign_count=3)
    await store.add_passkey(passkey)
    # Two sign-ins that both read counter 3: only one of them is recorded.
    results = await asyncio.gather(
        *(store.use_passkey(passkey.credential_id, 3, 4 + n, now + 5) for n in range(6))
    )
    assert results.count(True) == 1
    used = await store.find_passkey(passkey.credential_id)
    assert used is not None and used.sign_count == 4 + results.index(True)
    assert used.last_used_at == pytest.approx(now + 5)  # nx-27017 rounds a $set float
    assert not await store.use_passkey("unknown", 0, 1, now)


async def test_delete_user_removes_its_passkeys(store: Store, now: float) -> None:
    user = make_user("ann@example.com")
    await store.create_user(user)
    mine, theirs = make_passkey(user.id, now), make_passkey("someone", now)
    await store.add_passkey(mine)
    await store.add_passkey(theirs)
    await store.delete_user(user.id, until=now + 3600, now=now)
    assert await store.find_passkey(mine.credential_id) is None
    assert await store.list_passkeys("someone") == [theirs]


# --- second factors (core.domain.mfa) ---


def make_challenge(
    now: float, *, user_id: str = "u1", ttl: float = 300, bound: str | None = None
) -> MfaChallenge:
    return MfaChallenge(
        token_hash=uuid.uuid4().hex,
        user_id=user_id,
        amr=["pwd"],
        expires_at=now + ttl,
        bound=bound,
    )


async def test_a_totp_factor_is_set_up_then_confirmed_once(store: Store) -> None:
    assert await store.get_totp("u1") is None
    assert await store.put_totp(TotpFactor("u1", "sealed-1", created_at=1000.0))
    # Set up again before confirming: the new secret replaces the first.
    assert await store.put_totp(TotpFactor("u1", "sealed-2", created_at=1000.0))
    assert await store.get_totp("u1") == TotpFactor("u1", "sealed-2", False, 0, 1000.0)
    assert not await store.confirm_totp("u1", "sealed-1", 100)  # not the secret checked
    assert await store.confirm_totp("u1", "sealed-2", 100)
    assert not await store.confirm_totp("u1", "sealed-2", 101)  # confirmed already
    assert await store.get_totp("u1") == TotpFactor("u1", "sealed-2", True, 100, 1000.0)
    # A confirmed factor is not replaced by a new set-up.
    assert not await store.put_totp(TotpFactor("u1", "sealed-3", created_at=1000.0))
    assert (await store.get_totp("u1")).secret == "sealed-2"  # type: ignore[union-attr]


async def test_second_factors_read_the_confirmed_totp_and_the_passkeys_together(
    store: Store, now: float
) -> None:
    assert await store.second_factors("u1") == SecondFactors(totp_confirmed=False, passkeys=0)
    await store.put_totp(TotpFactor("u1", "sealed", created_at=now))
    # Being set up, it signs nobody in: the gate must not ask for it.
    assert await store.second_factors("u1") == SecondFactors(totp_confirmed=False, passkeys=0)
    await store.confirm_totp("u1", "sealed", 100)
    assert await store.second_factors("u1") == SecondFactors(totp_confirmed=True, passkeys=0)
    for n in range(2):
        await store.add_passkey(make_passkey("u1", now + n))
    await store.add_passkey(make_passkey("u2", now))
    assert await store.second_factors("u1") == SecondFactors(totp_confirmed=True, passkeys=2)
    await store.delete_totp("u1")
    assert await store.second_factors("u1") == SecondFactors(totp_confirmed=False, passkeys=2)
    assert await store.second_factors("u2") == SecondFactors(totp_confirmed=False, passkeys=1)


async def test_a_totp_step_is_used_once_and_never_an_earlier_one(store: Store, now: float) -> None:
    await store.put_totp(TotpFactor("u1", "sealed", created_at=now))
    assert not await store.use_totp_step("u1", 101)  # not confirmed: signs nobody in
    await store.confirm_totp("u1", "sealed", 100)
    assert not await store.use_totp_step("u1", 100)  # the confirming code's step
    assert await store.use_totp_step("u1", 102)
    assert not await store.use_totp_step("u1", 101)
    assert not await store.use_totp_step("other", 500)


async def test_concurrent_uses_of_one_totp_step_one_wins(store: Store, now: float) -> None:
    await store.put_totp(TotpFactor("u1", "sealed", created_at=now))
    await store.confirm_totp("u1", "sealed", 100)
    results = await asyncio.gather(*(store.use_totp_step("u1", 101) for _ in range(10)))
    assert sorted(results) == [False] * 9 + [True]


async def test_delete_totp(store: Store, now: float) -> None:
    await store.put_totp(TotpFactor("u1", "sealed", created_at=now))
    assert await store.delete_totp("u1")
    assert not await store.delete_totp("u1")
    assert await store.get_totp("u1") is None


async def test_recovery_codes_are_replaced_and_each_used_once(store: Store) -> None:
    assert await store.count_recovery_codes("u1") == 0
    await store.set_recovery_codes("u1", ["a", "b", "c"])
    await store.set_recovery_codes("u2", ["a"])
    assert await store.count_recovery_codes("u1") == 3
    assert await store.use_recovery_code("u1", "b")
    assert not await store.use_recovery_code("u1", "b")
    assert not await store.use_recovery_code("u1", "zz")
    assert await store.count_recovery_codes("u1") == 2
    assert await store.count_recovery_codes("u2") == 1  # another user's are its own
    await store.set_recovery_codes("u1", ["d"])
    assert not await store.use_recovery_code("u1", "a")  # the old set is gone
    assert await store.count_recovery_codes("u1") == 1
    await store.set_recovery_codes("u1", [])
    assert await store.count_recovery_codes("u1") == 0


async def test_concurrent_uses_of_one_recovery_code_one_wins(store: Store) -> None:
    await store.set_recovery_codes("u1", ["a", "b"])
    results = await asyncio.gather(*(store.use_recovery_code("u1", "a") for _ in range(10)))
    assert sorted(results) == [False] * 9 + [True]


async def test_an_mfa_challenge_counts_tries_up_to_the_limit(store: Store, now: float) -> None:
    challenge = make_challenge(now, bound="digest")
    await store.put_mfa_challenge(challenge)
    for tries in (1, 2, 3):
        counted = await store.try_mfa_challenge(challenge.token_hash, now, 3)
        assert counted == dataclasses.replace(challenge, tries=tries)
    assert await store.try_mfa_challenge(challenge.token_hash, now, 3) is None
    assert await store.try_mfa_challenge("unknown", now, 3) is None


async def test_concurrent_tries_of_one_challenge_are_bounded(store: Store, now: float) -> None:
    challenge = make_challenge(now)
    await store.put_mfa_challenge(challenge)
    tries = await asyncio.gather(
        *(store.try_mfa_challenge(challenge.token_hash, now, 5) for _ in range(12))
    )
    assert sorted(t.tries for t in tries if t is not None) == [1, 2, 3, 4, 5]


async def test_an_mfa_challenge_expires_and_is_consumed_once(store: Store, now: float) -> None:
    challenge = make_challenge(now, ttl=60)
    await store.put_mfa_challenge(challenge)
    assert await store.try_mfa_challenge(challenge.token_hash, now + 60, 5) is None
    results = await asyncio.gather(
        *(store.consume_mfa_challenge(challenge.token_hash) for _ in range(5))
    )
    assert sorted(results) == [False] * 4 + [True]
    assert await store.try_mfa_challenge(challenge.token_hash, now, 5) is None


async def test_purge_and_delete_user_remove_second_factors(store: Store, now: float) -> None:
    old, live = make_challenge(now, ttl=-1), make_challenge(now, ttl=60)
    for challenge in (old, live):
        await store.put_mfa_challenge(challenge)
    await store.purge_expired(now)
    # An hour earlier the purged one would still be live: only the purge removed it.
    assert await store.try_mfa_challenge(old.token_hash, now - 3600, 5) is None
    assert await store.try_mfa_challenge(live.token_hash, now, 5) is not None

    user = make_user("mfa@example.com")
    await store.create_user(user)
    await store.put_totp(TotpFactor(user.id, "sealed", created_at=now))
    await store.set_recovery_codes(user.id, ["a"])
    mine = make_challenge(now, user_id=user.id)
    await store.put_mfa_challenge(mine)
    await store.delete_user(user.id, until=now + 3600, now=now)
    assert await store.get_totp(user.id) is None
    assert await store.count_recovery_codes(user.id) == 0
    assert await store.try_mfa_challenge(mine.token_hash, now, 5) is None
