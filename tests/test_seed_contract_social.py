"""The seed's HTTP contract (docs/api.md), part 3: Social sign-in (`/vk/`,
`/mail.ru/`, `/yandex/`), route by route, through real HTTP against the strict fake
providers of tests/fakes/providers.py. Part 1 and the map's intent: test_seed_contract.py.
"""

from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.fakes.providers import consent
from tests.seed_contract import (
    REFRESH,
    REGISTER,
    STORES,
    assert_error,
    assert_no_store,
    assert_pair,
    claims,
    store_settings,
)
from tests.storage_fixtures import running_app

PREFIX = {"vk": "vk", "mailru": "mail.ru", "yandex": "yandex"}
PROVIDERS = list(PREFIX)
FRONT_END = "https://app.example.com/signed-in"
EVERY_FRONT_END = {name: {"frontend_redirect": FRONT_END} for name in PROVIDERS}
VK_PHONE = "+79991234567"  # the fake VK ID user's phone, which VK sends without "+"


@pytest.fixture
def store():
    return "sqlite"


@pytest.fixture
def settings():
    return {}


@pytest.fixture
def provider_overrides():
    return {}


@pytest.fixture
def config_overrides(request, fake_providers, store, settings, provider_overrides):
    return {
        "providers": fake_providers.sections(**provider_overrides),
        "limits.provider_timeout": 1.0,
        "limits.per_ip_per_minute": 10_000,
        **store_settings(request, store),
        **settings,
    }


async def link(api, name, **query):
    response = await api.get(f"/{PREFIX[name]}/link", query=query)
    assert response.status == 200, response.body
    assert isinstance(response.body, str)
    return response.body


def token_query(name, params, *, with_state=True):
    """get/token's parameters: `code` (VK: `&device_id=...`; optional `&state=...`)."""
    query = {"code": params["code"]}
    if name == "vk":
        query["device_id"] = params["device_id"]
    if with_state:
        query["state"] = params["state"]
    return query


def assert_provider_tokens(response):
    """200 → {"access_token": "...", "refresh_token": "...", "expire_in": <seconds>}"""
    assert response.status == 200, response.body
    assert set(response.body) == {"access_token", "refresh_token", "expire_in"}
    assert isinstance(response.body["access_token"], str) and response.body["access_token"]
    assert isinstance(response.body["refresh_token"], str)
    assert type(response.body["expire_in"]) is int and response.body["expire_in"] > 0
    assert_no_store(response)


async def provider_token(api, name):
    params = await consent(await link(api, name))
    response = await api.get(f"/{PREFIX[name]}/get/token", query=token_query(name, params))
    assert_provider_tokens(response)
    return response.body["access_token"]


def cookie_header(response):
    jar = SimpleCookie()
    for line in response.headers.get_list("Set-Cookie"):
        jar.load(line)
    return {"Cookie": "; ".join(f"{k}={m.value}" for k, m in jar.items())}


def front_end_query(response):
    assert response.status == 302, response.body
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == FRONT_END
    return dict(parse_qsl(location.query))


# ---- GET /<prefix>/link -----------------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
async def test_get_prefix_link(api, fake_providers, config, name):
    """GET /<prefix>/link: "Creates a fresh `state` (and, where the provider supports PKCE,
    a `code_verifier`, kept server-side only) ... and returns the provider's authorization
    URL as a JSON string"; With `?redirect=1` it answers 302 to that URL instead."""
    fake = fake_providers[name]
    first, second = await link(api, name), await link(api, name)
    url = urlsplit(first)
    assert f"{url.scheme}://{url.netloc}{url.path}" == fake.url("authorize")
    query = dict(parse_qsl(url.query))
    assert query["response_type"] == "code" and query["client_id"] == fake.client_id
    assert query["redirect_uri"] == f"{config.public_url}/{PREFIX[name]}/callback"
    assert query["state"] != dict(parse_qsl(urlsplit(second).query))["state"]
    if name == "vk":
        assert query["code_challenge"] and query["code_challenge_method"] == "S256"
    assert "code_verifier" not in first
    redirect = await api.get(f"/{PREFIX[name]}/link", query={"redirect": "1"})
    assert redirect.status == 302
    assert redirect.headers["Location"].startswith(fake.url("authorize") + "?")


async def test_get_prefix_link_state_expires_after_10_minutes(api, clock):
    """api.md: "Creates a fresh `state` ... that expires after 10 minutes\""""
    early, late = await consent(await link(api, "yandex")), await consent(await link(api, "yandex"))
    clock.advance(590)
    assert_provider_tokens(await api.get("/yandex/get/token", query=token_query("yandex", early)))
    clock.advance(20)
    late_answer = await api.get("/yandex/get/token", query=token_query("yandex", late))
    assert_error(late_answer, 400, "invalid_state")


# ---- GET /<prefix>/callback -------------------------------------------------------------


@pytest.mark.parametrize("provider_overrides", [EVERY_FRONT_END])
@pytest.mark.parametrize("name", PROVIDERS)
async def test_get_prefix_callback_to_the_frontend_redirect(api, name, provider_overrides):
    """GET /<prefix>/callback: "if the provider's config has `frontend_redirect`, answers
    302 to it carrying the same query parameters (the front end then calls `get/token`)";
    get/token: "The `state` is taken from the parameter, or else from what `callback`
    remembered for this code.\""""
    params = await consent(await link(api, name))
    passed_on = front_end_query(await api.get(f"/{PREFIX[name]}/callback", query=params))
    assert passed_on == {k: v for k, v in params.items() if k != "ext_id"}
    no_state = token_query(name, passed_on, with_state=False)
    assert_provider_tokens(await api.get(f"/{PREFIX[name]}/get/token", query=no_state))


@pytest.mark.parametrize("name", PROVIDERS)
async def test_get_prefix_callback_exchanges_itself(api, fake_providers, name):
    """api.md: "otherwise it performs the exchange itself and answers like `get/token`.\""""
    params = await consent(await link(api, name))
    assert_provider_tokens(await api.get(f"/{PREFIX[name]}/callback", query=params))
    assert fake_providers[name].calls["token"] == 1


async def test_get_prefix_callback_provider_error(api, fake_mailru):
    """api.md: "A provider error (`?error=access_denied`) gives 400 with that error.\""""
    params = await consent(await link(api, "mailru"), deny=True)
    assert_error(await api.get("/mail.ru/callback", query=params), 400, "access_denied")
    forged = {"code": "c", "state": "x" * 43}
    assert_error(await api.get("/mail.ru/callback", query=forged), 400, "invalid_state")
    assert fake_mailru.calls["token"] == 0


# ---- Binding a sign-in to the browser that started it (RFC 9700 §4.7) -------------------


async def test_binding_a_browser_started_flow_is_checked_at_callback(api, fake_vk):
    """api.md: "a flow started by a browser visit (`/link?redirect=1`) is always bound (a
    cookie set there is checked at `callback`)\""""
    redirect = await api.get("/vk/link", query={"redirect": "1"})
    assert redirect.headers.get_list("Set-Cookie")
    params = await consent(redirect.headers["Location"])
    assert_error(await api.get("/vk/callback", query=params), 400, "invalid_state")
    mine = await api.get("/vk/callback", query=params, headers=cookie_header(redirect))
    assert_provider_tokens(mine)


@pytest.mark.parametrize("settings", [{"social.require_binding": True}])
@pytest.mark.parametrize("provider_overrides", [EVERY_FRONT_END])
async def test_binding_a_switch_refuses_the_unbound_form(
    api, fake_yandex, settings, provider_overrides
):
    """api.md: "a flow started by the JSON `/link` is bound when the front end presents
    the `state` at `get/token`; and a switch in config refuses the unbound form\""""
    params = await consent(await link(api, "yandex"))
    front_end_query(await api.get("/yandex/callback", query=params))
    unbound = token_query("yandex", params, with_state=False)
    assert_error(await api.get("/yandex/get/token", query=unbound), 400, "invalid_request")
    assert fake_yandex.calls["token"] == 0
    assert_provider_tokens(await api.get("/yandex/get/token", query=token_query("yandex", params)))


# ---- GET /<prefix>/get/token ------------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("store", STORES)
async def test_get_prefix_get_token(api, fake_providers, name, store):
    """GET /<prefix>/get/token?code=... (VK: &device_id=...; any provider: optional
    &state=...): "200 → {"access_token": "...", "refresh_token": "...", "expire_in":
    <seconds>} ... Each `state` works once.\""""
    params = await consent(await link(api, name))
    query = token_query(name, params)
    assert_provider_tokens(await api.get(f"/{PREFIX[name]}/get/token", query=query))
    assert_error(await api.get(f"/{PREFIX[name]}/get/token", query=query), 400, "invalid_state")
    assert fake_providers[name].calls["token"] == 1
    # "sending the stored `code_verifier` where PKCE applies" (VK ID requires it)
    (sent,) = [r for r in fake_providers[name].requests if r.endpoint == "token"]
    assert name != "vk" or sent.form["code_verifier"]


async def test_get_prefix_get_token_errors(api, fake_vk, fake_yandex):
    """get/token: VK needs `&device_id=...` (400 `invalid_request`); 400 `invalid_grant`:
    "the provider rejected an authorization code (its own error text goes in the
    description)\""""
    params = await consent(await link(api, "vk"))
    no_device = {"code": params["code"], "state": params["state"]}
    assert_error(await api.get("/vk/get/token", query=no_device), 400, "invalid_request")
    assert_error(await api.get("/vk/get/token"), 400, "invalid_request")
    assert fake_vk.calls["token"] == 0
    params = await consent(await link(api, "yandex"))
    bad_code = {**token_query("yandex", params), "code": "not-a-code-yandex-issued"}
    refused = await api.get("/yandex/get/token", query=bad_code)
    assert_error(refused, 400, "invalid_grant")
    assert "code is invalid or expired" in refused.body["error_description"]  # its own text


# ---- GET /<prefix>/registration and /<prefix>/login --------------------------------------


@pytest.mark.parametrize("store", STORES)
async def test_get_prefix_registration(api, user, store):
    """GET /<prefix>/registration?access_token=<provider token>: "creates a user holding
    that provider identity ..., plus the email / phone the provider returned where those
    are not registered yet. 200 → {"access", "refresh"} (our tokens). 409 `user_exists`
    when that provider identity is already registered.\""""
    token = await provider_token(api, "vk")
    pair = assert_pair(await api.get("/vk/registration", query={"access_token": token}))
    assert claims(pair["access"])["user_name"] == VK_PHONE  # no email: the phone number
    refreshed = await api.get(REFRESH, query={"refresh": pair["refresh"]})
    assert (refreshed.status, refreshed.body["email"]) == (200, None)  # "email or null"
    taken = await api.post(REGISTER, json_body={**user, "phone_number": VK_PHONE})
    assert_error(taken, 409, "user_exists")  # the phone was attached
    bearer = {"Authorization": f"Bearer {token}"}  # the header wins over the query
    again = await api.get("/vk/registration", query={"access_token": "junk"}, headers=bearer)
    assert_error(again, 409, "user_exists")


async def test_tokens_user_name_falls_back_to_provider_subject(api):
    """Tokens: `user_name` is "the user's email, else phone number, else `provider:subject`"
    (Mail.ru does not vouch for the fake user's example.com address; it sends no phone)."""
    token = await provider_token(api, "mailru")
    pair = assert_pair(await api.get("/mail.ru/registration", query={"access_token": token}))
    assert claims(pair["access"])["user_name"] == "mailru:10795631207138211234"


async def test_get_prefix_registration_keeps_registered_identifiers(api, user):
    """api.md: "plus the email / phone the provider returned where those are not registered
    yet". A documented change (docs/linking.md, docs/security.md LK1): when an account holds
    an address the provider vouches for, the registration answers 409 `account_exists` with
    the account's sign-in `methods` instead of making a second account beside it."""
    await api.post(REGISTER, json_body={**user, "phone_number": VK_PHONE})
    token = await provider_token(api, "vk")
    response = await api.get("/vk/registration", query={"access_token": token})
    assert_error(response, 409, "account_exists")
    assert isinstance(response.body["methods"], list)


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("name", PROVIDERS)
async def test_get_prefix_login(api, name, store):
    """GET /<prefix>/login?access_token=<provider token>: "Fetches the profile, finds the
    user by provider identity. 200 → {"access", "refresh"}. 404 `user_not_found`.\"; the
    token may also come in an `Authorization: Bearer` header."""
    token = await provider_token(api, name)
    login = f"/{PREFIX[name]}/login"
    assert_error(await api.get(login, query={"access_token": token}), 404, "user_not_found")
    registered = await api.get(f"/{PREFIX[name]}/registration", query={"access_token": token})
    subject = claims(assert_pair(registered)["access"])["sub"]
    by_query = assert_pair(await api.get(login, query={"access_token": token}))
    bearer = {"Authorization": f"Bearer {token}"}
    by_header = assert_pair(await api.get(login, query={"access_token": "junk"}, headers=bearer))
    assert claims(by_query["access"])["sub"] == claims(by_header["access"])["sub"] == subject


@pytest.mark.parametrize("route", ["registration", "login"])
async def test_social_invalid_provider_token(api, fake_providers, route):
    """401 `invalid_provider_token`: "the provider rejected an access token we were given,
    or it was issued to another app\""""
    foreign = fake_providers.mailru.mint_token(client_id="another-app")
    for token in (foreign, "not-a-token"):
        answer = await api.get(f"/mail.ru/{route}", query={"access_token": token})
        assert_error(answer, 401, "invalid_provider_token")
    assert_error(await api.get(f"/mail.ru/{route}"), 400, "invalid_request")


async def test_social_provider_unavailable(api, fake_yandex):
    """502 `provider_unavailable`: "the provider timed out, refused, or answered something
    that is not its documented JSON\""""
    token = await provider_token(api, "yandex")
    for mode in ("garbage", "server_error"):
        fake_yandex.set_mode(mode)
        answer = await api.get("/yandex/login", query={"access_token": token})
        assert_error(answer, 502, "provider_unavailable")


@pytest.mark.parametrize("provider_overrides", [{"vk": {"client_id": ""}}])
async def test_social_provider_not_configured(api, provider_overrides):
    """503 `provider_not_configured`: "the provider is installed but has no client id /
    secret configured\" (for each of the five routes)."""
    for route in ("link", "callback", "get/token", "registration", "login"):
        answer = await api.get(f"/vk/{route}", query={"code": "c", "access_token": "t"})
        assert_error(answer, 503, "provider_not_configured")
    assert isinstance(await link(api, "yandex"), str)


@pytest.mark.parametrize("settings", [{"limits.per_ip_per_minute": 2}])
async def test_social_rate_limited_per_client_ip(api, settings):
    """429 `rate_limited` with `Retry-After`; `limits.per_ip_per_minute`: "login,
    registration and provider routes, per client IP\""""
    for _ in range(2):
        await link(api, "vk")
    limited = await api.get("/yandex/link")
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) > 0


# ---- Configuration: the providers' defaults ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "authorize_url", "scope"),
    [
        ("vk", "https://id.vk.ru/authorize", "email phone"),
        # A documented change (docs/social.md): since 2025 Mail.ru signs in through VK ID;
        # api.md's OAuth Mail defaults (oauth.mail.ru, userinfo) are `mode: legacy`.
        ("mailru", "https://id.vk.ru/authorize", "email phone"),
        ("yandex", "https://oauth.yandex.ru/authorize", None),
    ],
)
async def test_configuration_provider_defaults(tmp_path, name, authorize_url, scope):
    """Configuration: `providers.<name>` defaults `authorize_url` and `scope` (vk:
    https://id.vk.ru/authorize, "email phone"; mailru: https://oauth.mail.ru/login,
    userinfo; yandex: https://oauth.yandex.ru/authorize, ""), seen in `/link`'s URL."""
    section = {name: {"client_id": "app-id", "client_secret": "app-secret"}}
    async with running_app(tmp_path, f"sqlite:///{tmp_path}/vhod.db", providers=section) as app:
        status, url = await app.call("GET", f"/{PREFIX[name]}/link")
    assert status == 200, url
    assert url.startswith(authorize_url + "?"), url
    assert dict(parse_qsl(urlsplit(url).query)).get("scope") == scope
