"""Refresh tokens are signed with a key that is never published (issue 21, item 11): a stock
verifier that checks only the signature and the issuer never takes one for an access token,
on a key pair (from the JWKS) or on HS256 (with `jwt.secret`). Refresh tokens signed the old
way, with a published key, keep working until they expire."""

from __future__ import annotations

import jwt
import pytest

from server import build_services
from tests.conftest import TEST_SECRET, make_config

ACCESS = "/validate/jwt/access"
REFRESH = "/validate/jwt/refresh"
JWKS = "/.well-known/jwks.json"
ISSUER = "https://id.example.test"


async def registered(api, user):
    response = await api.post("/authorization/registration", json_body=user)
    assert response.status == 200, response.body
    return response.body


def signature_and_issuer_only(token, key, algorithm):
    """What a service checking no audience does: signature, algorithm, issuer, expiry."""
    return jwt.decode(token, key, algorithms=[algorithm], issuer=ISSUER)


@pytest.fixture(params=["ES256", "EdDSA", "RS256"])
def algorithm(request):
    return request.param


@pytest.fixture
def config_overrides(algorithm):
    return {"jwt.secret": None, "jwt.algorithm": algorithm, "jwt.issuer": ISSUER}


async def test_no_published_key_verifies_a_refresh_token(api, user, algorithm):
    tokens = await registered(api, user)
    published = jwt.PyJWKSet.from_dict((await api.get(JWKS)).body)
    access_kid = jwt.get_unverified_header(tokens["access"])["kid"]
    # The access token verifies from the JWKS with signature and issuer alone ...
    claims = signature_and_issuer_only(tokens["access"], published[access_kid], algorithm)
    assert claims["mode"] == "access_token"
    # ... the refresh token with no published key, whichever one a verifier tries.
    refresh_kid = jwt.get_unverified_header(tokens["refresh"])["kid"]
    assert refresh_kid not in {key.key_id for key in published.keys}
    for key in published.keys:
        with pytest.raises(jwt.PyJWTError):
            signature_and_issuer_only(tokens["refresh"], key, algorithm)
    # vhod itself takes it, as before, and never as an access token.
    assert (await api.get(REFRESH, query={"refresh": tokens["refresh"]})).status == 200
    assert (await api.get(ACCESS, query={"access": tokens["refresh"]})).body is False
    assert (await api.get(ACCESS, query={"access": tokens["access"]})).body is True


async def test_a_refresh_token_signed_before_the_upgrade_still_refreshes(
    api, user, services, algorithm
):
    tokens = await registered(api, user)
    claims = jwt.decode(tokens["refresh"], options={"verify_signature": False})
    signer = services.keys.ring.signer(services.keys.clock())
    # As the previous version signed it: the published key's kid, typ refresh+jwt.
    old = jwt.encode(
        claims, signer.signing, algorithm, headers={"kid": signer.kid, "typ": "refresh+jwt"}
    )
    response = await api.get(REFRESH, query={"refresh": old})
    assert response.status == 200, response.body
    assert (await api.get(ACCESS, query={"access": response.body["access"]})).body is True
    assert (await api.get(ACCESS, query={"access": old})).body is False


def test_on_hs256_the_shared_secret_does_not_verify_a_refresh_token(io_loop, tmp_path):
    config = make_config(tmp_path, **{"jwt.issuer": ISSUER})  # jwt.secret, HS256
    services = io_loop.run_sync(lambda: build_services(config))
    try:
        user = io_loop.run_sync(
            lambda: services.accounts.register("+79161234567", "a@b.c", "p" * 8)
        )
        claims = signature_and_issuer_only(user["access"], TEST_SECRET, "HS256")
        assert claims["mode"] == "access_token"
        with pytest.raises(jwt.InvalidSignatureError):
            signature_and_issuer_only(user["refresh"], TEST_SECRET, "HS256")
        assert services.accounts.validate_access(user["refresh"]) is False
        refreshed = io_loop.run_sync(lambda: services.accounts.refresh(user["refresh"]))
        assert services.accounts.validate_access(refreshed["access"]) is True
    finally:
        io_loop.run_sync(services.close)


def test_hs256_refresh_tokens_signed_before_the_upgrade_still_refresh(io_loop, tmp_path):
    config = make_config(tmp_path, **{"jwt.issuer": ISSUER})
    services = io_loop.run_sync(lambda: build_services(config))
    try:
        pair = io_loop.run_sync(
            lambda: services.accounts.register("+79161234567", "a@b.c", "p" * 8)
        )
        claims = jwt.decode(pair["refresh"], options={"verify_signature": False})
        hmac_kid = services.tokens.keys.hmac.kid
        for headers in ({"kid": hmac_kid, "typ": "refresh+jwt"}, None):  # with a kid, and before
            old = jwt.encode(claims, TEST_SECRET, "HS256", headers=headers)
            refreshed = io_loop.run_sync(lambda old=old: services.accounts.refresh(old))
            assert services.accounts.validate_access(refreshed["access"]) is True
    finally:
        io_loop.run_sync(services.close)


def test_instances_on_one_kek_or_one_secret_take_each_others_refresh_tokens(io_loop, tmp_path):
    """Different data directories, one store: the refresh key comes from what they share,
    the KEK on a key pair, `jwt.secret` on HS256; and while they switch from one to the
    other, each takes the other's refresh tokens."""
    kek = "k" * 48
    database = f"sqlite:///{tmp_path}/shared.db"

    def start(folder, **settings):
        config = make_config(
            tmp_path / folder,
            **{"storage.url": database, "jwt.key_encryption_key": kek, **settings},
        )
        return io_loop.run_sync(lambda: build_services(config))

    hs256 = start("a", **{"jwt.algorithm": "HS256"})
    es256 = start("b", **{"jwt.algorithm": "ES256"})  # jwt.secret kept for the switch
    es256_only = start("c", **{"jwt.algorithm": "ES256", "jwt.secret": None})
    try:
        pair = io_loop.run_sync(lambda: hs256.accounts.register("+79161234567", "a@b.c", "p" * 8))
        other = io_loop.run_sync(lambda: es256.accounts.register("+79161234568", "d@b.c", "p" * 8))
        for services in (hs256, es256):
            for token in (pair["refresh"], other["refresh"]):
                refreshed = io_loop.run_sync(lambda s=services, t=token: s.accounts.refresh(t))
                assert "access" in refreshed
        # Only the KEK in common: the ES256 instance's tokens, not the HS256 one's.
        io_loop.run_sync(lambda: es256_only.accounts.refresh(other["refresh"]))
        assert (
            jwt.get_unverified_header(other["refresh"])["kid"]
            == es256_only.tokens.refresh_signer.kid
        )
    finally:
        for services in (hs256, es256, es256_only):
            io_loop.run_sync(services.close)
