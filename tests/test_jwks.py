"""Asymmetric tokens over HTTP: the JWKS, discovery, the claims, forgeries (JW6), rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from server import build_services, make_app
from tests.conftest import TEST_SECRET, make_config

ACCESS = "/validate/jwt/access"
REFRESH = "/validate/jwt/refresh"
JWKS = "/.well-known/jwks.json"
ISSUER = "https://id.example.test"
AUDIENCE = "orders-api"


@pytest.fixture
def config_overrides():
    return {
        "jwt.secret": None,
        "jwt.algorithm": "ES256",
        "jwt.issuer": ISSUER,
        "jwt.audience": AUDIENCE,
        "jwt.rotation_interval": 1000,
        "jwt.rotation_lead": 100,
        "jwt.refresh_ttl": 3600,
    }


async def registered(api, user):
    response = await api.post("/authorization/registration", json_body=user)
    assert response.status == 200, response.body
    return response.body


def header_of(token):
    return jwt.get_unverified_header(token)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_jwks_serves_public_keys_only_with_a_short_cache(api):
    response = await api.get(JWKS)
    assert response.status == 200
    keys = response.body["keys"]
    assert len(keys) == 1
    assert set(keys[0]) == {"kty", "crv", "x", "y", "kid", "alg", "use"}  # no "d"
    assert (keys[0]["kty"], keys[0]["crv"], keys[0]["alg"]) == ("EC", "P-256", "ES256")
    max_age = int(response.headers["Cache-Control"].split("max-age=")[1])
    assert 0 < max_age < 100  # shorter than the lead


async def test_discovery_names_the_issuer_and_the_jwks(api, config):
    response = await api.get("/.well-known/openid-configuration")
    assert response.body["issuer"] == ISSUER
    assert response.body["jwks_uri"] == f"{config.public_url}/.well-known/jwks.json"
    assert response.body["id_token_signing_alg_values_supported"] == ["ES256"]


async def test_tokens_carry_kid_typ_aud_sid_and_verify_from_the_jwks_alone(api, user):
    tokens = await registered(api, user)
    jwks = jwt.PyJWKSet.from_dict((await api.get(JWKS)).body)
    access, refresh = header_of(tokens["access"]), header_of(tokens["refresh"])
    assert (access["alg"], access["typ"]) == ("ES256", "JWT")
    assert refresh["typ"] == "refresh+jwt"
    assert access["kid"] == jwks.keys[0].key_id
    # Refresh tokens are signed with a key that is never published (tests/test_refresh_keys.py).
    assert refresh["kid"] not in {key.key_id for key in jwks.keys}
    key = jwks[access["kid"]]
    claims = jwt.decode(
        tokens["access"], key, algorithms=["ES256"], audience=AUDIENCE, issuer=ISSUER
    )
    refresh_claims = jwt.decode(tokens["refresh"], options={"verify_signature": False})
    assert claims["sid"] == refresh_claims["jti"]  # the session is the refresh-token family
    assert {"sub", "jti", "iat", "exp", "iss", "mode", "user_name", "aud"} <= set(claims)
    assert "aud" not in refresh_claims and "sid" not in refresh_claims
    with pytest.raises(jwt.PyJWTError):  # a refresh token is no access token
        jwt.decode(tokens["refresh"], key, algorithms=["ES256"], audience=AUDIENCE, issuer=ISSUER)
    # The refreshed access token keeps the session.
    refreshed = (await api.get(REFRESH, query={"refresh": tokens["refresh"]})).body["access"]
    assert jwt.decode(refreshed, options={"verify_signature": False})["sid"] == claims["sid"]
    assert (await api.get(ACCESS, query={"access": tokens["access"]})).body is True


async def test_jw6_forgeries_are_refused(api, user, services):
    tokens = await registered(api, user)
    claims = jwt.decode(tokens["access"], options={"verify_signature": False})
    signer = services.keys.ring.signer(services.keys.clock())
    real = signer.signing
    forged = {
        "unknown kid": jwt.encode(claims, real, "ES256", headers={"kid": "AAAAAAAAAAAAAAAA"}),
        "no kid": jwt.encode(claims, real, "ES256"),
    }
    for name in ("jku", "x5u"):
        forged[name] = jwt.encode(
            claims, real, "ES256", headers={"kid": signer.kid, name: "https://evil.test/k"}
        )
    forged["jwk"] = jwt.encode(
        claims, real, "ES256", headers={"kid": signer.kid, "jwk": signer.jwk}
    )
    forged["x5c"] = jwt.encode(claims, real, "ES256", headers={"kid": signer.kid, "x5c": ["MII"]})
    # HMAC with the public key as the secret, under the real kid (algorithm confusion).
    public_pem = real.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": signer.kid}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    forged["hs256 with the public key"] = f"{head}.{body}.{b64(mac)}"
    # The configured secret is gone (ES256 install): an HMAC token without kid is refused.
    forged["hs256 no kid"] = jwt.encode(claims, TEST_SECRET, "HS256")
    for name, token in forged.items():
        assert (await api.get(ACCESS, query={"access": token})).body is False, name
    assert (await api.get(ACCESS, query={"access": tokens["access"]})).body is True


async def test_a_scheduled_rotation_publishes_first_then_signs_then_retires(
    api, user, services, clock
):
    first = await registered(api, user)
    old_kid = header_of(first["access"])["kid"]
    clock.advance(900)  # the lead before the first key's interval ends
    assert await services.keys.rotate_if_due() is True
    published = [k["kid"] for k in (await api.get(JWKS)).body["keys"]]
    assert published[0] == old_kid and len(published) == 2  # the next key, published first
    login = {"email": user["email"], "hash_password": user["hash_password"]}
    before = (await api.post("/authorization/login/email", json_body=login)).body
    assert header_of(before["access"])["kid"] == old_kid  # it does not sign yet
    clock.advance(100)
    after = (await api.post("/authorization/login/email", json_body=login)).body
    new_kid = header_of(after["access"])["kid"]
    assert new_kid == published[1]
    # The old key's refresh token still works, and still verifies.
    assert (await api.get(REFRESH, query={"refresh": first["refresh"]})).status == 200
    assert [k["kid"] for k in (await api.get(JWKS)).body["keys"]] == published
    # Unpublished once every token it signed has expired (retention: refresh_ttl + leeway).
    clock.advance(3600 + 11)
    await services.keys.refresh()
    assert [k["kid"] for k in (await api.get(JWKS)).body["keys"]] == [new_kid]
    assert (await api.get(ACCESS, query={"access": first["access"]})).body is False


def test_switching_from_hs256_to_es256_keeps_the_hmac_tokens_valid(io_loop, tmp_path, clock):
    def start(**settings):
        return io_loop.run_sync(
            lambda: build_services(make_config(tmp_path, **settings), clock=clock)
        )

    before = start(**{"jwt.algorithm": "HS256"})
    hmac_access = before.tokens.issue("access_token", "u1", "ann").token
    legacy = jwt.encode(  # signed before tokens had a kid
        jwt.decode(hmac_access, options={"verify_signature": False}), TEST_SECRET, "HS256"
    )
    io_loop.run_sync(before.close)
    assert header_of(hmac_access)["kid"].startswith("hs-")
    after = start(**{"jwt.algorithm": "ES256"})  # the secret is kept for the switch
    try:
        assert after.accounts.validate_access(hmac_access) is True
        assert after.accounts.validate_access(legacy) is True
        new = after.tokens.issue("access_token", "u1", "ann").token
        assert header_of(new)["alg"] == "ES256"
        assert after.accounts.validate_access(new) is True
        assert make_app(after)  # and the app builds on the mixed key set
    finally:
        io_loop.run_sync(after.close)


def test_a_new_install_chooses_es256_and_one_with_a_secret_keeps_hs256(io_loop, tmp_path):
    fresh = make_config(tmp_path / "new", **{"jwt.secret": None})
    services = io_loop.run_sync(lambda: build_services(fresh))
    assert services.tokens.keys.algorithm == "ES256"
    io_loop.run_sync(services.close)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "jwt_secret").write_text("s" * 64)
    upgraded = make_config(tmp_path / "old", **{"jwt.secret": None})
    services = io_loop.run_sync(lambda: build_services(upgraded))
    assert services.tokens.keys.algorithm == "HS256"
    io_loop.run_sync(services.close)


async def test_access_tokens_must_carry_the_configured_audience(api, user, services):
    tokens = await registered(api, user)
    claims = jwt.decode(tokens["access"], options={"verify_signature": False})
    signer = services.keys.ring.signer(services.keys.clock())

    def signed(**changes):
        body = {k: v for k, v in {**claims, **changes}.items() if v is not None}
        return jwt.encode(body, signer.signing, "ES256", headers={"kid": signer.kid})

    for aud, valid in (
        (None, False),
        ("billing-api", False),
        (["billing-api", {"x": 1}], False),
        (["billing-api", AUDIENCE], True),
        (AUDIENCE, True),
    ):
        answer = (await api.get(ACCESS, query={"access": signed(aud=aud)})).body
        assert answer is valid, aud


@pytest.mark.parametrize(("algorithm", "kty"), [("EdDSA", "OKP"), ("RS256", "RSA")])
def test_eddsa_and_rs256_sign_and_verify_from_the_jwks(io_loop, tmp_path, algorithm, kty):
    config = make_config(
        tmp_path, **{"jwt.secret": None, "jwt.algorithm": algorithm, "jwt.audience": AUDIENCE}
    )
    services = io_loop.run_sync(lambda: build_services(config))
    try:
        document, _ = services.keys.jwks()
        assert [(k["kty"], k["alg"]) for k in document["keys"]] == [(kty, algorithm)]
        assert "d" not in document["keys"][0] and "p" not in document["keys"][0]
        token = services.tokens.issue("access_token", "u1", "ann").token
        key = jwt.PyJWKSet.from_dict(document)[header_of(token)["kid"]]
        claims = jwt.decode(token, key, algorithms=[algorithm], audience=AUDIENCE, issuer="vhod")
        assert claims["sub"] == "u1"
        assert services.accounts.validate_access(token) is True
    finally:
        io_loop.run_sync(services.close)
