"""The seed's HTTP contract (docs/api.md), part 2: Tokens, Token checks
(`/validate/jwt/`), Operations and Configuration, through real HTTP (and, for the
configuration, real server processes). Part 1 and the map's intent: test_seed_contract.py.
"""

import subprocess
import sys
import time
import uuid

import jwt
import pytest

from tests.conftest import TEST_SECRET
from tests.processes import ROOT, Server, call_json, clean_env
from tests.seed_contract import (
    ACCESS,
    CONTRACT_YAML,
    REFRESH,
    REGISTER,
    STORES,
    assert_error,
    assert_no_store,
    claims,
    register,
    resign,
    store_settings,
)
from tests.storage_fixtures import NxServer, running_app, with_database


@pytest.fixture
def store():
    return "sqlite"


@pytest.fixture
def settings():
    return {}


@pytest.fixture
def config_overrides(request, store, settings):
    if store == "outage":  # a MongoDB wire server of the test's own, that it stops
        url = with_database(request.getfixturevalue("outage").url, "vhod_outage")
        # Each request during the outage waits out the server selection: one second.
        stored = {"storage.url": url + "?serverSelectionTimeoutMS=1000"}
    else:
        stored = store_settings(request, store)
    return {"limits.per_ip_per_minute": 10_000, **stored, **settings}


# ---- Tokens -----------------------------------------------------------------------------


async def test_tokens_claims(api, user):
    """Tokens: "Both are JWTs signed with the configured algorithm (default HS256 ...)";
    claims `sub` (user id, string), `jti` (random UUID), `iat`, `exp` (+`access_ttl`
    900 s / +`refresh_ttl` 30 days), `iss` (`vhod`), `mode` (`access_token` /
    `refresh_token`), `user_name` ("the user's email, else phone number, else
    `provider:subject`")."""
    tokens = await register(api, user)
    access, refresh = claims(tokens["access"]), claims(tokens["refresh"], verify=False)
    for token in tokens.values():
        assert jwt.get_unverified_header(token)["alg"] == "HS256"
    for found, mode, ttl in ((access, "access_token", 900), (refresh, "refresh_token", 2592000)):
        assert isinstance(found["sub"], str) and found["sub"]
        assert str(uuid.UUID(found["jti"])) == found["jti"]
        assert found["exp"] - found["iat"] == ttl
        assert abs(found["iat"] - time.time()) < 300
        assert (found["iss"], found["mode"], found["user_name"]) == ("vhod", mode, user["email"])
    assert access["sub"] == refresh["sub"] and access["jti"] != refresh["jti"]


async def test_tokens_signed_with_the_configured_secret(api, user):
    """Tokens: "Both are JWTs signed with the configured algorithm (default HS256, secret
    from config or `VHOD_JWT__SECRET` ...)". A documented change (docs/security.md JW8): the
    access token is; the refresh token is signed with a key derived from that secret, so
    that no service holding the secret can take a refresh token for an access token."""
    pair = await register(api, user)
    assert claims(pair["access"])["mode"] == "access_token"  # verifies with the secret
    with pytest.raises(jwt.InvalidSignatureError):
        claims(pair["refresh"])
    assert claims(pair["refresh"], verify=False)["mode"] == "refresh_token"


async def test_tokens_secret_generated_once_and_kept_in_the_data_folder(tmp_path, user):
    """api.md: "when none is given, a random one is generated once and kept in the data folder,
    never a built-in constant\""""
    url = f"sqlite:///{tmp_path}/vhod.db"
    hs256 = {"jwt.secret": None, "jwt.algorithm": "HS256"}
    async with running_app(tmp_path, url, **hs256) as app:
        status, tokens = await app.call("POST", REGISTER, user)
        assert status == 200, tokens
    secret = (tmp_path / "jwt_secret").read_bytes().strip()
    assert len(secret) >= 32 and secret != TEST_SECRET.encode()
    jwt.decode(tokens["access"], secret, algorithms=["HS256"])
    async with running_app(tmp_path, url, **hs256) as again:  # the same secret, kept
        assert await again.call("POST", ACCESS, {"access": tokens["access"]}) == (200, True)


# Re-signing with HS512 under the HS256 secret is the point: PyJWT's key-length note is not.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_tokens_validity_rules(api, user, clock):
    """api.md: "A token is valid only with a signature by the configured key, an allowed algorithm
    (never `none`, never an algorithm the server is not configured for), an unexpired
    `exp`, the right `iss`, and the right `mode`.\""""
    tokens = await register(api, user)
    access = tokens["access"]
    unsigned = jwt.encode(jwt.decode(access, options={"verify_signature": False}), None, "none")
    invalid = [
        resign(access, key="another-secret-that-is-long-enough-too!"),
        unsigned,
        resign(access, algorithm="HS512"),
        resign(access, iss="someone-else"),
        resign(access, exp=None),
        resign(access, mode="refresh_token"),
        tokens["refresh"],
    ]
    for token in invalid:
        assert (await api.get(ACCESS, query={"access": token})).body is False, token
    for token in (resign(tokens["refresh"], iss="someone-else"), access):
        assert_error(await api.get(REFRESH, query={"refresh": token}), 401, "invalid_token")
    clock.advance(900 + 61)  # past exp and the 60 s leeway kept for clock skew
    assert (await api.get(ACCESS, query={"access": access})).body is False


@pytest.mark.parametrize("store", STORES)
async def test_tokens_refresh_valid_only_while_stored_and_its_user_exists(
    api, user, services, clock, store
):
    """api.md: "A refresh token is also valid only while its `jti` is stored, not revoked, and its
    user still exists.\""""
    tokens = await register(api, user)
    unknown_jti = resign(tokens["refresh"], jti=str(uuid.uuid4()))
    assert_error(await api.get(REFRESH, query={"refresh": unknown_jti}), 401, "invalid_token")
    assert (await api.get(REFRESH, query={"refresh": tokens["refresh"]})).status == 200
    now = clock()
    await services.store.delete_user(claims(tokens["access"])["sub"], until=now + 1, now=now)
    gone = await api.get(REFRESH, query={"refresh": tokens["refresh"]})
    assert_error(gone, 401, "invalid_token")


# ---- Token checks: /validate/jwt/ -----------------------------------------------------


@pytest.mark.parametrize("store", STORES)
async def test_get_validate_jwt_refresh(api, user, store):
    """GET /validate/jwt/refresh?refresh=<jwt>: "200 → {"access": "<new access jwt>",
    "email": "<user's email or null>"}. 401 `invalid_token`.\""""
    tokens = await register(api, user)
    response = await api.get(REFRESH, query={"refresh": tokens["refresh"]})
    assert response.status == 200, response.body
    assert set(response.body) == {"access", "email"}
    assert response.body["email"] == user["email"]
    assert claims(response.body["access"])["mode"] == "access_token"
    assert_no_store(response)
    for bad in ("junk", tokens["access"], resign(tokens["refresh"], exp=1)):
        assert_error(await api.get(REFRESH, query={"refresh": bad}), 401, "invalid_token")
    assert_error(await api.get(REFRESH), 400, "invalid_request")


@pytest.mark.parametrize("path", [REFRESH, ACCESS])
async def test_validate_jwt_bearer_header_wins_and_post_bodies_answer_the_same(api, user, path):
    """api.md: "Where a token is a parameter, it may also come in an `Authorization: Bearer
    <token>` header; the header wins when both are present. The two `/validate/jwt/`
    routes also answer POST with the token in a JSON or form body; the answers are
    identical.\""""
    tokens = await register(api, user)
    name = "refresh" if path == REFRESH else "access"
    token = tokens[name]
    answers = [
        await api.get(path, query={name: token}),
        await api.get(path, query={name: "junk"}, headers={"Authorization": f"Bearer {token}"}),
        await api.post(path, json_body={name: token}),
        await api.post(path, form={name: token}),
    ]
    assert {a.status for a in answers} == {200}
    shapes = [a.body if path == ACCESS else sorted(a.body.items())[1:] for a in answers]
    assert shapes == [shapes[0]] * 4, shapes  # refresh: the same email, fresh access tokens
    assert all(a.body is True for a in answers) or all(
        set(a.body) == {"access", "email"} for a in answers
    )


@pytest.mark.parametrize("settings", [{"jwt.rotate_refresh": True}])
@pytest.mark.parametrize("store", STORES)
async def test_get_validate_jwt_refresh_with_rotation(api, user, store, settings):
    """api.md: "When refresh rotation is switched on in config ..., the body also carries
    "refresh": "<new refresh jwt>", the old one stops working, and presenting an
    already-rotated refresh token revokes every token of that family.\""""
    old = (await register(api, user))["refresh"]
    rotated = await api.get(REFRESH, query={"refresh": old})
    assert rotated.status == 200 and set(rotated.body) == {"access", "email", "refresh"}
    new = rotated.body["refresh"]
    assert claims(new, verify=False)["mode"] == "refresh_token" and new != old
    assert_error(await api.get(REFRESH, query={"refresh": old}), 401, "invalid_token")
    assert_error(await api.get(REFRESH, query={"refresh": new}), 401, "invalid_token")


async def test_get_validate_jwt_refresh_rotation_off_by_default(api, user, config):
    """api.md: "(new, off by default so old clients keep working)": no `refresh` in the body, and
    the same refresh token keeps working."""
    assert config.jwt.rotate_refresh is False
    old = (await register(api, user))["refresh"]
    for _ in range(2):
        response = await api.get(REFRESH, query={"refresh": old})
        assert response.status == 200 and "refresh" not in response.body


@pytest.mark.parametrize("store", STORES)
async def test_get_validate_jwt_access(api, user, store):
    """GET /validate/jwt/access?access=<jwt>: "200 → `true` or `false` (a bare JSON
    boolean)\""""
    tokens = await register(api, user)
    response = await api.get(ACCESS, query={"access": tokens["access"]})
    assert (response.status, response.raw) == (200, b"true")
    response = await api.get(ACCESS, query={"access": "junk"})
    assert (response.status, response.raw) == (200, b"false")


async def test_get_validate_jwt_access_false_never_an_error(api, user, clock):
    """api.md: "Any malformed, forged, expired or wrong-mode token, and an empty value
    (`?access=`), gives `false`, never an error ... Only a missing parameter gives 400
    `invalid_request`.\""""
    tokens = await register(api, user)
    forged = resign(tokens["access"], key="x" * 40)
    for token in ("", "a.b.c", "...", "eyJ", "x" * 5000, forged, tokens["refresh"]):
        response = await api.get(ACCESS, query={"access": token})
        assert (response.status, response.body) == (200, False), token
    clock.advance(900 + 61)  # past exp and the 60 s leeway kept for clock skew
    assert (await api.get(ACCESS, query={"access": tokens["access"]})).body is False
    assert_error(await api.get(ACCESS), 400, "invalid_request")
    assert_error(await api.post(ACCESS, json_body={}), 400, "invalid_request")


# ---- Operations -----------------------------------------------------------------------


async def test_operations_healthz_and_readyz(api):
    """api.md: "`GET /healthz` (process alive) and `GET /readyz` (storage reachable: 200, else
    503)\" (the 503 side: test_operations_readyz_503_and_storage_unavailable)."""
    health = await api.get("/healthz")
    assert (health.status, health.body) == (200, {"status": "ok"})
    assert (await api.get("/readyz")).status == 200


@pytest.fixture
def outage(tmp_path):
    server = NxServer(tmp_path / "nx")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("store", ["outage"])
async def test_operations_readyz_503_and_storage_unavailable(api, user, outage, store):
    """`/readyz`: "storage reachable: 200, else 503"; 503 `storage_unavailable`: "the
    database cannot be reached; the request changed nothing\""""
    assert (await api.get("/readyz")).status == 200
    outage.stop()
    assert_error(await api.post(REGISTER, json_body=user), 503, "storage_unavailable")
    assert (await api.get("/readyz")).status == 503
    outage.start()
    assert (await api.get("/readyz")).status == 200
    await register(api, user)  # the refused registration wrote nothing


# ---- Configuration ----------------------------------------------------------------------


def write_config(tmp_path, name="config.yaml", extra=""):
    path = tmp_path / name
    path.write_text(
        "passwords:\n  algorithm: bcrypt\n  bcrypt_rounds: 4\n"
        f"server:\n  data_dir: {tmp_path / 'data'}\n"
        f"storage:\n  url: sqlite:///{tmp_path / 'data' / 'vhod.db'}\n"
        "jwt:\n  issuer: from-the-file\n  access_ttl: 600\n" + extra
    )
    return path


@pytest.mark.parametrize("how", ["--config", "VHOD_CONFIG", "default"])
async def test_configuration_config_file_and_environment_overrides(tmp_path, user, how):
    """api.md: "`python server.py --config PATH` (default `config.yaml`; `VHOD_CONFIG` also names
    it) starts the server. Every key can be overridden by an environment variable: `VHOD_`
    + the key path in upper case joined by `__`.\""""
    path = write_config(tmp_path, "config.yaml" if how == "default" else "vhod-test.yaml")
    args, env = {
        "--config": (("--config", str(path)), {}),
        "VHOD_CONFIG": ((), {"VHOD_CONFIG": str(path)}),
    }.get(how, ((), {}))
    vk = {"VHOD_PROVIDERS__VK__CLIENT_ID": "vk-app-id", "VHOD_PROVIDERS__VK__CLIENT_SECRET": "s"}
    server = Server(tmp_path, *args, VHOD_JWT__ACCESS_TTL="120", **vk, **env)
    try:
        server.wait_started()
        status, tokens = await call_json(server, REGISTER, user)
        assert status == 200, tokens
        status, url = await call_json(server, "/vk/link", method="GET")
        assert status == 200 and "client_id=vk-app-id&" in url, url
    finally:
        assert server.stop() == 0
    found = jwt.decode(tokens["access"], options={"verify_signature": False})
    assert found["iss"] == "from-the-file"  # the file was read
    assert found["exp"] - found["iat"] == 120  # the environment won over it


@pytest.mark.parametrize(
    ("env", "extra", "named"),
    [
        ({"VHOD_SERVER__NO_SUCH_KEY": "1"}, "", "server.no_such_key"),
        ({}, "limits:\n  login_window: soon\n", "limits.login_window"),
        ({"VHOD_JWT__SECRET": "31-bytes-is-one-byte-too-short!"}, "", "jwt.secret"),
    ],
    ids=["unknown-key", "wrong-type", "short-secret"],
)
def test_configuration_bad_settings_stop_the_start_naming_the_key(tmp_path, env, extra, named):
    """api.md: "An unknown key or a wrong type stops startup with a message that names the key";
    Tokens: "A configured secret (`jwt.secret`) shorter than 32 bytes stops the server at
    start with a clear message.\""""
    server = Server(tmp_path, "--config", str(write_config(tmp_path, extra=extra)), **env)
    assert server.process.wait(timeout=30) != 0
    assert named in server.log()
    assert "Traceback" not in server.log()


def test_configuration_every_key_of_the_contract_is_accepted(tmp_path):
    """api.md: "Configuration the tests and operators rely on": its YAML block, each key
    with its documented default, is a valid configuration file (`--check-config`)."""
    path = tmp_path / "contract.yaml"
    path.write_text(CONTRACT_YAML.format(data=tmp_path / "data"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--check-config", "--config", str(path)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for line in ("bcrypt_rounds: 12", "default_region: RU", "per_ip_per_minute: 30"):
        assert line in done.stdout
