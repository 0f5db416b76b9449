"""core.domain.revocations: the sessions ended lately, kept in memory and read from the store by a
poll, so that /validate/jwt/access refuses their access tokens with a set lookup (issue 21,
item 12). The cross-instance behaviour: tests/test_multi_instance_revocation.py."""

from __future__ import annotations

import sqlite3

from core.domain.revocations import FORGET_EVERY_SECONDS, OVERLAP_SECONDS, RevokedSessions
from core.infra.clock import FakeClock
from core.signing.tokens import LEEWAY_SECONDS
from storage import RefreshToken
from storage.sqlite.store import SQLiteStore

ACCESS = "/validate/jwt/access"


async def valid(api, token):
    response = await api.get(ACCESS, query={"access": token})
    assert response.status == 200
    return response.body


async def two_sessions(api, user):
    first = (await api.post("/authorization/registration", json_body=user)).body
    login = {"email": user["email"], "hash_password": user["hash_password"]}
    second = (await api.post("/authorization/login/email", json_body=login)).body
    return first, second


async def test_logout_ends_only_that_sessions_access_tokens(api, user, services):
    first, second = await two_sessions(api, user)
    refreshed = (await api.get("/validate/jwt/refresh", query={"refresh": first["refresh"]})).body
    assert (await api.post("/authorization/logout", json_body={"refresh": first["refresh"]})).body
    await services.accounts.revoked.poll()
    # Every access token of the session, the one refreshed from it too; not the other one.
    assert await valid(api, first["access"]) is False
    assert await valid(api, refreshed["access"]) is False
    assert await valid(api, second["access"]) is True
    # Logging out again writes nothing more, and changes nothing.
    assert (await api.post("/authorization/logout", json_body={"refresh": first["refresh"]})).body
    assert await valid(api, second["access"]) is True


async def test_disabling_a_user_ends_its_access_tokens(api, user, services):
    first, second = await two_sessions(api, user)
    claims = services.tokens.decode(first["access"], "access_token")
    await services.admin.disable(claims["sub"], "ops")
    await services.accounts.revoked.poll()
    assert await valid(api, first["access"]) is False
    assert await valid(api, second["access"]) is False


async def unit(tmp_path, clock, access_ttl=900):
    store = SQLiteStore(str(tmp_path / "vhod.db"))
    await store.setup()
    return store, RevokedSessions(store, access_ttl=access_ttl, clock=clock)


async def test_a_revocation_stamped_by_a_clock_behind_ours_is_still_read(tmp_path):
    clock = FakeClock()
    store, revoked = await unit(tmp_path, clock)
    try:
        await revoked.poll()
        clock.advance(1)
        # Another instance, its clock 5 s behind, revokes after our read.
        await store.revoke_family("s1", until=clock() + 3600, now=clock() - 5)
        await revoked.poll()
        assert "s1" in revoked
        # One that far behind the overlap is not: instances' clocks must agree that closely.
        clock.advance(1)
        await store.revoke_family("s2", until=clock() + 3600, now=clock() - OVERLAP_SECONDS - 2)
        await revoked.poll()
        assert "s2" not in revoked
    finally:
        await store.close()


async def test_a_session_is_forgotten_once_its_access_tokens_have_expired(tmp_path):
    clock = FakeClock()
    store, revoked = await unit(tmp_path, clock, access_ttl=900)
    try:
        await store.revoke_family("s1", until=clock() + 86_400, now=clock())
        await revoked.poll()
        assert "s1" in revoked and revoked.size == 1
        # Still kept while an access token of it can be accepted (ttl, leeway, clocks) ...
        clock.advance(900 + LEEWAY_SECONDS)
        await revoked.poll()
        assert "s1" in revoked
        # ... forgotten after, at the next pass: the set holds one TTL's worth at most.
        clock.advance(LEEWAY_SECONDS + FORGET_EVERY_SECONDS)
        await revoked.poll()
        assert "s1" not in revoked and revoked.size == 0
    finally:
        await store.close()


async def test_a_restarted_instance_reads_the_sessions_ended_within_a_ttl(tmp_path):
    clock = FakeClock()
    store, _ = await unit(tmp_path, clock)
    try:
        await store.revoke_family("old", until=clock() + 86_400, now=clock() - 2000)
        await store.revoke_family("recent", until=clock() + 86_400, now=clock() - 800)
        restarted = RevokedSessions(store, access_ttl=900, clock=clock)
        await restarted.poll()
        assert "recent" in restarted and "old" not in restarted
    finally:
        await store.close()


async def test_a_database_from_before_keeps_its_revocations(tmp_path):
    path = tmp_path / "vhod.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE revoked_families (family TEXT PRIMARY KEY, until REAL NOT NULL)")
    old.execute("INSERT INTO revoked_families VALUES ('f1', 9e9)")
    old.commit()
    old.close()
    store = SQLiteStore(str(path))
    try:
        await store.setup()  # adds revoked_at: an old revocation counts as long past
        await store.add_refresh_token(
            RefreshToken(jti="f1", user_id="u1", family="f1", expires_at=9e9)
        )
        found = await store.get_refresh_token_and_user("f1")
        assert found is not None and found[0].revoked is True
        assert await store.revoked_families_since(1.0) == []
        await store.revoke_family("f2", until=9e9, now=100.0)
        assert await store.revoked_families_since(1.0) == [("f2", 100.0)]
    finally:
        await store.close()
