"""Token routes over HTTP: /validate/jwt/refresh, /validate/jwt/access, logout; JW1–JW5, RT1."""

import asyncio
import base64
import json
import uuid

import jwt
import pytest

from tests.conftest import TEST_SECRET
from tests.storage_fixtures import running_app

REFRESH = "/validate/jwt/refresh"
ACCESS = "/validate/jwt/access"
LOGOUT = "/authorization/logout"


async def registered(api, user):
    response = await api.post("/authorization/registration", json_body=user)
    assert response.status == 200, response.body
    return response.body


def resign(token, **changes):
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, TEST_SECRET, algorithm="HS256")


async def test_refresh_gives_a_new_access_token_and_the_email(api, user):
    tokens = await registered(api, user)
    response = await api.get(REFRESH, query={"refresh": tokens["refresh"]})
    assert response.status == 200
    assert set(response.body) == {"access", "email"}
    assert response.body["email"] == "ann@example.com"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert (await api.get(ACCESS, query={"access": response.body["access"]})).body is True


@pytest.mark.parametrize("how", ["header", "json", "form"])
async def test_refresh_token_from_header_or_post_body(api, user, how):
    tokens = await registered(api, user)
    if how == "header":
        response = await api.get(
            REFRESH,
            query={"refresh": "junk"},  # the header wins
            headers={"Authorization": f"Bearer {tokens['refresh']}"},
        )
    elif how == "json":
        response = await api.post(REFRESH, json_body={"refresh": tokens["refresh"]})
    else:
        response = await api.post(REFRESH, form={"refresh": tokens["refresh"]})
    assert response.status == 200, response.body
    assert response.body["email"] == "ann@example.com"


async def test_access_token_checks_true_and_false(api, user):
    tokens = await registered(api, user)
    good = tokens["access"]
    assert (await api.get(ACCESS, query={"access": good})).body is True
    assert (await api.post(ACCESS, json_body={"access": good})).body is True
    assert (await api.post(ACCESS, form={"access": good})).body is True
    bearer = await api.get(ACCESS, headers={"Authorization": f"Bearer {good}"})
    assert bearer.body is True
    assert (await api.get(ACCESS, query={"access": good[:-2]})).body is False


async def test_access_without_the_parameter_is_400(api):
    response = await api.get(ACCESS)
    assert (response.status, response.body["error"]) == (400, "invalid_request")


async def test_v1_an_empty_or_non_string_access_value_is_false(api):
    for response in (
        await api.get(ACCESS, query={"access": ""}),
        await api.post(ACCESS, form={"access": ""}),
        await api.post(ACCESS, json_body={"access": ""}),
        await api.post(ACCESS, json_body={"access": 12}),
        await api.post(ACCESS, json_body={"access": None}),
        await api.post(ACCESS, json_body={"access": {"$ne": None}}),
        await api.get(ACCESS, query={"access": ""}, headers={"Authorization": "Bearer "}),
    ):
        assert (response.status, response.body, response.raw) == (200, False, b"false")


async def test_jw4_kinds_never_interchange(api, user):
    tokens = await registered(api, user)
    assert (await api.get(ACCESS, query={"access": tokens["refresh"]})).body is False
    response = await api.get(REFRESH, query={"refresh": tokens["access"]})
    assert (response.status, response.body["error"]) == (401, "invalid_token")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_jw1_alg_none_is_false(api, user, alg):
    tokens = await registered(api, user)
    claims = jwt.decode(tokens["access"], options={"verify_signature": False})

    def b64(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    forged = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}."
    assert (await api.get(ACCESS, query={"access": forged})).body is False


async def test_jw1_resigned_with_another_algorithm_is_false(api, user):
    tokens = await registered(api, user)
    claims = jwt.decode(tokens["access"], options={"verify_signature": False})
    forged = jwt.encode(claims, TEST_SECRET, algorithm="HS512")
    assert (await api.get(ACCESS, query={"access": forged})).body is False


async def test_jw1_one_flipped_bit_is_false(api, user):
    token = (await registered(api, user))["access"]
    raw = bytearray(token.encode())
    raw[len(raw) // 2] ^= 0x01
    assert (await api.get(ACCESS, query={"access": raw.decode()})).body is False


async def test_jw3_exp_required_expired_and_issuer(api, user, clock):
    token = (await registered(api, user))["access"]
    assert (await api.get(ACCESS, query={"access": resign(token, exp=None)})).body is False
    wrong_issuer = resign(token, iss="not-vhod")
    assert (await api.get(ACCESS, query={"access": wrong_issuer})).body is False
    expired = resign(token, exp=int(clock()) - 61)
    assert (await api.get(ACCESS, query={"access": expired})).body is False
    clock.advance(900 + 61)
    assert (await api.get(ACCESS, query={"access": token})).body is False


@pytest.mark.parametrize(
    "junk", ["x", "a.b.c", "....", "eyJ.eyJ.sig", "%00%ff", "ёжик.ёжик.ёжик", "A" * 20_000]
)
async def test_jw5_malformed_tokens_are_false_never_500(api, junk):
    response = await api.post(ACCESS, json_body={"access": junk})
    assert (response.status, response.body) == (200, False)
    response = await api.get(REFRESH, query={"refresh": junk})
    assert (response.status, response.body["error"]) == (401, "invalid_token")


async def test_jw5_a_100_kb_token_is_refused_cleanly(api):
    response = await api.post(ACCESS, json_body={"access": "A" * 100_000})
    assert (response.status, response.body["error"]) == (413, "payload_too_large")


async def test_rt1_forged_refresh_with_unknown_jti_is_401(api, user):
    token = (await registered(api, user))["refresh"]
    forged = resign(token, jti=str(uuid.uuid4()))
    response = await api.get(REFRESH, query={"refresh": forged})
    assert (response.status, response.body["error"]) == (401, "invalid_token")


async def test_rt1_refresh_whose_subject_does_not_own_the_jti_is_401(api, user):
    token = (await registered(api, user))["refresh"]
    sub = jwt.decode(token, options={"verify_signature": False})["sub"]
    other = await registered(
        api, {**user, "email": "bob@example.com", "phone_number": "+79161112233"}
    )
    # A real jti under another user's subject, signed with the real key: the record disagrees.
    swapped = resign(other["refresh"], sub=sub)
    response = await api.get(REFRESH, query={"refresh": swapped})
    assert response.status == 401


async def test_expired_refresh_is_401(api, user, clock):
    token = (await registered(api, user))["refresh"]
    clock.advance(2_592_000 + 61)
    response = await api.get(REFRESH, query={"refresh": token})
    assert (response.status, response.body["error"]) == (401, "invalid_token")


async def test_logout_revokes_one_token(api, user):
    first = (await registered(api, user))["refresh"]
    login = {"email": user["email"], "hash_password": user["hash_password"]}
    second = (await api.post("/authorization/login/email", json_body=login)).body["refresh"]
    response = await api.post(LOGOUT, json_body={"refresh": first})
    assert (response.status, response.body) == (200, True)
    assert (await api.get(REFRESH, query={"refresh": first})).status == 401
    assert (await api.get(REFRESH, query={"refresh": second})).status == 200
    again = await api.post(LOGOUT, json_body={"refresh": first})
    assert (again.status, again.body) == (200, True)


async def test_logout_all_revokes_every_token_of_the_user(api, user):
    first = (await registered(api, user))["refresh"]
    login = {"email": user["email"], "hash_password": user["hash_password"]}
    second = (await api.post("/authorization/login/email", json_body=login)).body["refresh"]
    response = await api.post(
        LOGOUT, form={"all": "true"}, headers={"Authorization": f"Bearer {first}"}
    )
    assert (response.status, response.body) == (200, True)
    for token in (first, second):
        assert (await api.get(REFRESH, query={"refresh": token})).status == 401


async def test_logout_all_as_a_json_boolean(api, user):
    first = (await registered(api, user))["refresh"]
    login = {"email": user["email"], "hash_password": user["hash_password"]}
    second = (await api.post("/authorization/login/email", json_body=login)).body["refresh"]
    response = await api.post(LOGOUT, json_body={"refresh": first, "all": True})
    assert (response.status, response.body) == (200, True)
    assert (await api.get(REFRESH, query={"refresh": second})).status == 401


async def test_logout_with_a_bad_token_or_flag(api, user):
    response = await api.post(LOGOUT, json_body={"refresh": "junk"})
    assert (response.status, response.body["error"]) == (401, "invalid_token")
    token = (await registered(api, user))["refresh"]
    response = await api.post(LOGOUT, json_body={"refresh": token, "all": "maybe"})
    assert (response.status, response.body["error"]) == (400, "invalid_request")


@pytest.mark.parametrize("retire", ["logout", "rotate"])
@pytest.mark.parametrize("config_overrides", [{"jwt.rotate_refresh": True}])
async def test_a_dead_refresh_token_cannot_end_every_session(api, user, config_overrides, retire):
    """D10: logout all=true takes a live refresh token; a revoked or rotated one is 401."""
    old = (await registered(api, user))["refresh"]
    login = {"email": user["email"], "hash_password": user["hash_password"]}
    other = (await api.post("/authorization/login/email", json_body=login)).body["refresh"]
    if retire == "logout":
        assert (await api.post(LOGOUT, json_body={"refresh": old})).status == 200
    else:
        assert (await api.get(REFRESH, query={"refresh": old})).status == 200

    response = await api.post(LOGOUT, json_body={"refresh": old, "all": True})

    assert (response.status, response.body["error"]) == (401, "invalid_token")
    assert (await api.get(REFRESH, query={"refresh": other})).status == 200


async def rotate_until_refused(
    app, token: str, rotations: list[str], ready: asyncio.Event, after: int
) -> str:
    """Refresh with rotation in a loop, as a thief holding `token` would; the last token.

    `ready` is set once `after` rotations are done (or the loop ended). A chain that
    escaped the revocation would go on for ever: the loop gives up after 50 rotations."""
    try:
        while len(rotations) < 50:
            status, body = await app.call("POST", REFRESH, {"refresh": token})
            if status != 200:
                return token
            token = body["refresh"]
            rotations.append(token)
            if len(rotations) >= after:
                ready.set()
        return token
    finally:
        ready.set()


TRIALS = 12


@pytest.mark.parametrize("revoke", ["logout_all", "reuse"])
async def test_a_token_rotated_in_a_loop_does_not_survive_revocation(
    tmp_path, backend_url, user, revoke
):
    """D4: whatever rotation is in flight, after logout all (or a detected reuse) no token
    of the user (of the family) works, on SQLite and over the MongoDB wire."""
    overrides = {"jwt.rotate_refresh": True, "limits.per_ip_per_minute": 100_000}
    async with running_app(tmp_path, backend_url, **overrides) as app:
        survivors = []
        for trial in range(TRIALS):
            account = {
                **user,
                "email": f"u{trial}@example.com",
                "phone_number": f"+7916{trial:07d}",
            }
            status, pair = await app.call("POST", "/authorization/registration", account)
            assert status == 200, pair
            stolen = pair["refresh"]
            rotations: list[str] = []
            ready = asyncio.Event()
            # Revoke after a different number of rotations in each trial.
            thief = asyncio.ensure_future(
                rotate_until_refused(app, stolen, rotations, ready, after=2 + trial % 3)
            )
            await ready.wait()
            if revoke == "logout_all":
                login = {"email": account["email"], "hash_password": account["hash_password"]}
                status, mine = await app.call("POST", "/authorization/login/email", login)
                assert status == 200, mine
                status, _ = await app.call(
                    "POST", LOGOUT, {"refresh": mine["refresh"], "all": True}
                )
            else:  # the first, long retired token comes back: the family is ended
                status, _ = await app.call("POST", REFRESH, {"refresh": stolen})
                assert status == 401
                status = 200
            assert status == 200
            last = await thief
            for token in [last, *rotations[-3:]]:
                status, _ = await app.call("POST", REFRESH, {"refresh": token})
                if status != 401:
                    survivors.append((trial, status))
        assert survivors == []
