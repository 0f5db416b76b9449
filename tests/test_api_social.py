"""Social sign-in end to end: vhod over HTTP against strict fake providers (OA1–OA6)."""

import asyncio
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest

from tests.fakes.providers import consent

PREFIX = {"vk": "vk", "mailru": "mail.ru", "yandex": "yandex"}
PROVIDERS = list(PREFIX)
FRONT_END = "https://app.example.com/signed-in"
EVERY_FRONT_END = {name: {"frontend_redirect": FRONT_END} for name in PROVIDERS}


@pytest.fixture
def provider_overrides():
    """Per-provider config changes; a test parametrizes this to change them."""
    return {}


@pytest.fixture
def flow_overrides():
    """Other config changes (`social.require_binding`); a test parametrizes this."""
    return {}


@pytest.fixture
def config_overrides(fake_providers, provider_overrides, flow_overrides):
    return {
        "providers": fake_providers.sections(**provider_overrides),
        "limits.provider_timeout": 1.0,
        "limits.per_ip_per_minute": 1000,
        **flow_overrides,
    }


async def link(api, name):
    response = await api.get(f"/{PREFIX[name]}/link")
    assert response.status == 200, response.body
    assert isinstance(response.body, str)
    return response.body


def token_query(name, params, *, with_state):
    query = {"code": params["code"]}
    if name == "vk":
        query["device_id"] = params["device_id"]
    if with_state:
        query["state"] = params["state"]
    return query


async def provider_token(api, name, **consent_args):
    """A provider access token got the way a client gets it: link, consent, get/token."""
    params = await consent(await link(api, name), **consent_args)
    response = await api.get(
        f"/{PREFIX[name]}/get/token", query=token_query(name, params, with_state=True)
    )
    assert response.status == 200, response.body
    return response.body["access_token"]


def cookie_header(response):
    """The binding cookie a browser would send back after this response."""
    jar = SimpleCookie()
    for line in response.headers.get_list("Set-Cookie"):
        jar.load(line)
    return {"Cookie": "; ".join(f"{k}={m.value}" for k, m in jar.items())}


def subject(pair):
    return jwt.decode(pair["access"], options={"verify_signature": False})["sub"]


def assert_no_store(response):
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


@pytest.mark.parametrize("provider_overrides", [EVERY_FRONT_END])
@pytest.mark.parametrize("name", PROVIDERS)
async def test_full_flow_through_the_front_end(api, fake_providers, name, provider_overrides):
    """link → consent → callback (302 to the front end) → get/token without state →
    registration → login: the original clients' flow."""
    fake = fake_providers[name]
    url = await link(api, name)
    params = await consent(url)
    callback = await api.get(f"/{PREFIX[name]}/callback", query=params)
    assert callback.status == 302
    location = urlsplit(callback.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == FRONT_END
    # Only what the front end needs: VK's ext_id (and anything a URL adds) is not passed on.
    assert dict(parse_qsl(location.query)) == {k: v for k, v in params.items() if k != "ext_id"}
    assert fake.calls["token"] == 0  # the front end exchanges, not the callback
    tokens = await api.get(
        f"/{PREFIX[name]}/get/token", query=token_query(name, params, with_state=False)
    )
    assert tokens.status == 200, tokens.body
    assert set(tokens.body) == {"access_token", "refresh_token", "expire_in"}
    assert isinstance(tokens.body["expire_in"], int)
    assert_no_store(tokens)
    registered = await api.get(
        f"/{PREFIX[name]}/registration", query={"access_token": tokens.body["access_token"]}
    )
    assert registered.status == 200, registered.body
    assert set(registered.body) == {"access", "refresh"}
    assert_no_store(registered)
    logged_in = await api.get(
        f"/{PREFIX[name]}/login",
        headers={"Authorization": f"Bearer {tokens.body['access_token']}"},
    )
    assert logged_in.status == 200
    assert_no_store(logged_in)
    assert subject(logged_in.body) == subject(registered.body)
    again = await api.get(
        f"/{PREFIX[name]}/registration", query={"access_token": tokens.body["access_token"]}
    )
    assert (again.status, again.body["error"]) == (409, "user_exists")


@pytest.mark.parametrize("name", PROVIDERS)
async def test_callback_exchanges_itself_without_a_front_end(api, fake_providers, name):
    params = await consent(await link(api, name))
    response = await api.get(f"/{PREFIX[name]}/callback", query=params)
    assert response.status == 200, response.body
    assert set(response.body) == {"access_token", "refresh_token", "expire_in"}
    assert_no_store(response)
    assert fake_providers[name].calls["token"] == 1


@pytest.mark.parametrize("name", PROVIDERS)
async def test_get_token_with_an_explicit_state_and_link_redirect(api, name):
    redirect = await api.get(f"/{PREFIX[name]}/link", query={"redirect": "1"})
    assert redirect.status == 302
    params = await consent(redirect.headers["Location"])
    response = await api.get(
        f"/{PREFIX[name]}/get/token",
        query=token_query(name, params, with_state=True),
        headers=cookie_header(redirect),
    )
    assert response.status == 200, response.body


async def test_registration_keeps_the_provider_profile(api, services):
    pair = (
        await api.get("/vk/registration", query={"access_token": await provider_token(api, "vk")})
    ).body
    user = await services.store.get_user(subject(pair))
    # VK ID vouches for no email (D14): kept in the profile, neither attached nor reserved.
    assert user.email is None and user.profile["email"] == "vk-user@example.com"
    assert jwt.decode(pair["access"], options={"verify_signature": False})["user_name"] == (
        "+79991234567"
    )
    assert user.phone == "+79991234567"  # VK sends it without "+"
    assert [(i.provider, i.subject) for i in user.identities] == [("vk", "9007199254740993")]
    assert user.profile["first_name"] == "Иван"


async def test_provider_login_for_an_unregistered_identity_is_404(api):
    token = await provider_token(api, "yandex")
    response = await api.get("/yandex/login", query={"access_token": token})
    assert (response.status, response.body["error"]) == (404, "user_not_found")


@pytest.mark.parametrize("name", PROVIDERS)
async def test_state_replay_is_refused_without_a_provider_call(api, fake_providers, name):
    params = await consent(await link(api, name))
    query = token_query(name, params, with_state=True)
    assert (await api.get(f"/{PREFIX[name]}/get/token", query=query)).status == 200
    replay = await api.get(f"/{PREFIX[name]}/get/token", query=query)
    assert (replay.status, replay.body["error"]) == (400, "invalid_state")
    assert fake_providers[name].calls["token"] == 1


async def test_unknown_and_missing_state_are_refused(api, fake_vk):
    params = await consent(await link(api, "vk"))
    unknown = await api.get(
        "/vk/get/token", query={**token_query("vk", params, with_state=False), "state": "x" * 43}
    )
    assert (unknown.status, unknown.body["error"]) == (400, "invalid_state")
    # No state and no callback that remembered one for this code.
    missing = await api.get("/vk/get/token", query=token_query("vk", params, with_state=False))
    assert (missing.status, missing.body["error"]) == (400, "invalid_state")
    callback = await api.get("/vk/callback", query={**params, "state": "forged-state"})
    assert (callback.status, callback.body["error"]) == (400, "invalid_state")
    assert fake_vk.calls["token"] == 0


async def test_expired_state_is_refused(api, fake_vk, clock):
    params = await consent(await link(api, "vk"))
    clock.advance(601)
    response = await api.get("/vk/get/token", query=token_query("vk", params, with_state=True))
    assert (response.status, response.body["error"]) == (400, "invalid_state")
    assert fake_vk.calls["token"] == 0


async def test_state_of_another_provider_is_refused_with_no_call(api, fake_vk, fake_yandex):
    """OA4: a Yandex state at /vk/get/token fails there, and VK is never asked."""
    yandex_params = await consent(await link(api, "yandex"))
    response = await api.get(
        "/vk/get/token",
        query={"code": yandex_params["code"], "state": yandex_params["state"], "device_id": "d"},
    )
    assert (response.status, response.body["error"]) == (400, "invalid_state")
    assert fake_vk.calls["token"] == 0
    # The state still works where it belongs.
    good = await api.get(
        "/yandex/get/token", query=token_query("yandex", yandex_params, with_state=True)
    )
    assert good.status == 200


async def test_provider_error_at_the_callback_has_our_words(api, fake_mailru):
    params = await consent(await link(api, "mailru"), deny=True)
    assert params["error"] == "access_denied"
    response = await api.get(
        "/mail.ru/callback", query={**params, "error_description": "<script>Call +7 900</script>"}
    )
    assert response.status == 400
    assert response.body == {
        "error": "access_denied",
        "error_description": "The user or the provider declined the sign-in.",
    }
    unknown = await api.get("/mail.ru/callback", query={"error": "<b>pwned</b>", "state": "s"})
    assert unknown.body == {
        "error": "provider_error",
        "error_description": "The provider reported an error.",
    }
    assert fake_mailru.calls["token"] == 0


async def test_a_forged_error_does_not_spend_someone_elses_state(api, fake_yandex):
    """D13: anybody can send `?error=...&state=<victim's>`; only the owner's browser spends it."""
    params = await consent(await link(api, "yandex"))
    forged = await api.get(
        "/yandex/callback", query={"error": "access_denied", "state": params["state"]}
    )
    assert forged.status == 400
    good = await api.get("/yandex/get/token", query=token_query("yandex", params, with_state=True))
    assert good.status == 200, good.body


async def test_the_owners_error_spends_its_state(api, fake_yandex):
    redirect = await api.get("/yandex/link", query={"redirect": "1"})
    params = await consent(redirect.headers["Location"], deny=True)
    denied = await api.get("/yandex/callback", query=params, headers=cookie_header(redirect))
    assert (denied.status, denied.body["error"]) == (400, "access_denied")
    again = await api.get(
        "/yandex/get/token",
        query={"code": "c", "state": params["state"]},
        headers=cookie_header(redirect),
    )
    assert again.body["error"] == "invalid_state"
    assert fake_yandex.calls["token"] == 0


async def test_injected_redirect_uri_is_ignored(api, fake_yandex, config):
    response = await api.get("/yandex/link", query={"redirect_uri": "https://evil.example/cb"})
    assert "evil.example" not in response.body
    expected = f"{config.public_url}/yandex/callback"
    assert dict(parse_qsl(urlsplit(response.body).query))["redirect_uri"] == expected
    params = await consent(response.body)
    token = await api.get(
        "/yandex/get/token",
        query={
            **token_query("yandex", params, with_state=True),
            "redirect_uri": "https://evil.example/cb",
        },
    )
    assert token.status == 200
    sent = [r for r in fake_yandex.requests if r.endpoint == "token"][-1]
    assert "evil.example" not in str(sent)


async def test_vk_needs_device_id(api, fake_vk):
    params = await consent(await link(api, "vk"))
    response = await api.get(
        "/vk/get/token", query={"code": params["code"], "state": params["state"]}
    )
    assert (response.status, response.body["error"]) == (400, "invalid_request")
    assert "device_id" in response.body["error_description"]
    assert fake_vk.calls["token"] == 0


@pytest.mark.parametrize("name", PROVIDERS)
async def test_token_of_another_app_is_refused(api, fake_providers, name):
    foreign = fake_providers[name].mint_token(client_id="another-app")
    for route in ("registration", "login"):
        response = await api.get(f"/{PREFIX[name]}/{route}", query={"access_token": foreign})
        assert (response.status, response.body["error"]) == (401, "invalid_provider_token")
    junk = await api.get(f"/{PREFIX[name]}/login", query={"access_token": "not-a-token"})
    assert (junk.status, junk.body["error"]) == (401, "invalid_provider_token")


@pytest.mark.parametrize("provider_overrides", [{"yandex": {"client_id": ""}}])
async def test_unconfigured_provider_answers_503_and_others_work(api, provider_overrides):
    for route in ("link", "callback", "get/token", "registration", "login"):
        response = await api.get(f"/yandex/{route}", query={"code": "c", "access_token": "t"})
        assert (response.status, response.body["error"]) == (503, "provider_not_configured")
    assert (await api.get("/vk/link")).status == 200


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("down", "cannot be reached"),
        ("hang", "did not answer in time"),  # vhod's client gave up: the timeout fired
        ("garbage", "not JSON"),
        ("server_error", "HTTP 500"),
    ],
)
async def test_provider_faults_give_502(api, fake_providers, mode, reason, services):
    token = await provider_token(api, "mailru")
    if mode == "down":
        await fake_providers.mailru.aclose()
    else:
        fake_providers.mailru.set_mode(mode)
    response = await api.get("/mail.ru/login", query={"access_token": token})
    assert (response.status, response.body["error"]) == (502, "provider_unavailable")
    assert reason in response.body["error_description"]
    # The configured timeout is the one the provider calls use (1 s in this module).
    assert services.providers["mailru"].request_timeout == services.config.limits.provider_timeout


async def test_mailru_error_in_a_200_answer_is_invalid_grant(api, fake_mailru):
    params = await consent(await link(api, "mailru"))
    query = token_query("mailru", params, with_state=True)
    query["code"] = "not-a-code-mailru-issued"
    response = await api.get("/mail.ru/get/token", query=query)
    assert (response.status, response.body["error"]) == (400, "invalid_grant")
    assert fake_mailru.calls["token"] == 1


async def test_provider_email_never_signs_into_a_password_account(api, user, fake_mailru, services):
    """OA6: Mail.ru does not vouch for emails; the same address must not reach Ann's account."""
    password_pair = (await api.post("/authorization/registration", json_body=user)).body
    fake_mailru.users["default"]["email"] = user["email"].upper()
    token = await provider_token(api, "mailru")
    login = await api.get("/mail.ru/login", query={"access_token": token})
    assert (login.status, login.body["error"]) == (404, "user_not_found")
    registered = await api.get("/mail.ru/registration", query={"access_token": token})
    assert registered.status == 200
    assert subject(registered.body) != subject(password_pair)
    provider_user = await services.store.get_user(subject(registered.body))
    assert provider_user.email is None  # owned by Ann: not attached
    ann = await services.store.get_user(subject(password_pair))
    assert ann.identities == []
    again = await api.get("/mail.ru/login", query={"access_token": token})
    assert subject(again.body) == subject(registered.body)


async def test_concurrent_provider_registrations_create_one_user(api, fake_vk):
    token = await provider_token(api, "vk")
    responses = await asyncio.gather(
        *(api.get("/vk/registration", query={"access_token": token}) for _ in range(6))
    )
    assert sorted(r.status for r in responses) == [200] + [409] * 5


async def test_link_states_and_challenges_are_fresh_and_hold_no_verifier(api):
    first, second = await link(api, "vk"), await link(api, "vk")
    one, two = dict(parse_qsl(urlsplit(first).query)), dict(parse_qsl(urlsplit(second).query))
    assert one["state"] != two["state"] and one["code_challenge"] != two["code_challenge"]
    assert len(one["state"]) >= 32 and one["code_challenge_method"].upper() == "S256"
    assert "code_verifier" not in first


async def test_codes_and_provider_tokens_never_reach_the_log(api, caplog):
    """AP3 for the provider routes: code, state, device_id and access_token are redacted."""
    import logging

    caplog.set_level(logging.DEBUG)
    params = await consent(await link(api, "vk"))
    query = token_query("vk", params, with_state=True)
    token = (await api.get("/vk/get/token", query=query)).body["access_token"]
    await api.get("/vk/registration", query={"access_token": token})
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "/vk/get/token" in text and "/vk/registration" in text
    for secret in (params["code"], params["state"], params["device_id"], token):
        assert secret not in text


async def test_a_provider_fault_is_logged_once_as_a_security_event(api, fake_mailru, caplog):
    """AP4: one structured line, with the reason and no token."""
    import logging

    token = await provider_token(api, "mailru")
    fake_mailru.set_mode("garbage")
    caplog.set_level(logging.DEBUG)
    response = await api.get("/mail.ru/login", query={"access_token": token})
    assert response.status == 502
    lines = [r for r in caplog.records if r.name != "vhod.access"]
    assert [getattr(r, "event", None) for r in lines] == ["provider_fault"]
    assert lines[0].provider == "mailru" and "not JSON" in lines[0].reason
    assert token not in caplog.text


@pytest.mark.parametrize("route", ["login", "registration"])
@pytest.mark.parametrize("name", PROVIDERS)
async def test_a_token_outside_rfc6750_is_refused_before_any_call(api, fake_providers, name, route):
    """F1: a non-Latin-1 token once broke Yandex's `Authorization: OAuth` header (500)."""
    for token in ("\U000bf430", "abc def", "ab\r\nX-Injected: 1", "тест", "a" * 5000):
        response = await api.get(f"/{PREFIX[name]}/{route}", query={"access_token": token})
        assert (response.status, response.body["error"]) == (401, "invalid_provider_token")
    assert fake_providers[name].calls["userinfo"] == 0


@pytest.mark.parametrize("name", PROVIDERS)
async def test_a_code_or_device_id_outside_visible_ascii_is_refused_before_any_call(
    api, fake_providers, name
):
    params = await consent(await link(api, name))
    for field_name, bad in (("code", "\U000bf430"), ("code", "a b"), ("device_id", "é")):
        if field_name == "device_id" and name != "vk":
            continue
        query = {**token_query(name, params, with_state=True), field_name: bad}
        response = await api.get(f"/{PREFIX[name]}/get/token", query=query)
        assert (response.status, response.body["error"]) == (400, "invalid_request")
    assert fake_providers[name].calls["token"] == 0
    # The state was not spent by the refused attempts.
    good = await api.get(
        f"/{PREFIX[name]}/get/token", query=token_query(name, params, with_state=True)
    )
    assert good.status == 200, good.body


# ---- binding the flow to the browser (OA7, D12), single use (D13), what is passed on (D15) ----

REQUIRE_BINDING = {"social.require_binding": True}


def front_end_query(response):
    assert response.status == 302, response.body
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == FRONT_END
    return dict(parse_qsl(location.query))


@pytest.mark.parametrize("name", PROVIDERS)
async def test_a_browser_started_flow_finishes_only_in_that_browser(api, fake_providers, name):
    """Login CSRF and a leaked code: the callback without the cookie /link set is refused."""
    redirect = await api.get(f"/{PREFIX[name]}/link", query={"redirect": "1"})
    (set_cookie,) = redirect.headers.get_list("Set-Cookie")
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes and "secure" not in attributes
    assert f"Path=/{PREFIX[name]}/" in set_cookie and "SameSite=Lax" in set_cookie
    params = await consent(redirect.headers["Location"])
    callback = f"/{PREFIX[name]}/callback"
    for headers in ({}, {"Cookie": "vhod_flow=another-browsers-value"}):
        refused = await api.get(callback, query=params, headers=headers)
        assert (refused.status, refused.body["error"]) == (400, "invalid_state")
        without = await api.get(
            f"/{PREFIX[name]}/get/token", query=token_query(name, params, with_state=True)
        )
        assert (without.status, without.body["error"]) == (400, "invalid_state")
    assert fake_providers[name].calls["token"] == 0
    mine = await api.get(callback, query=params, headers=cookie_header(redirect))
    assert mine.status == 200, mine.body


async def test_the_cookie_is_secure_when_the_public_url_is_https(services):
    served_over_http = services.providers["vk"]
    over_https = type(served_over_http)(
        served_over_http.settings, public_url="https://auth.example.com"
    )
    secure = (await services.social.link(over_https, bind_browser=True)).cookie
    plain = (await services.social.link(served_over_http, bind_browser=True)).cookie
    assert secure is not None and secure.secure
    assert plain is not None and not plain.secure
    assert (await services.social.link(over_https)).cookie is None  # a JSON /link sets none


@pytest.mark.parametrize("flow_overrides", [REQUIRE_BINDING])
@pytest.mark.parametrize("provider_overrides", [EVERY_FRONT_END])
@pytest.mark.parametrize("name", PROVIDERS)
async def test_with_binding_required_a_code_alone_is_refused(
    api, fake_providers, name, provider_overrides, flow_overrides
):
    """D12: a client holding only code (+ device_id) gets nothing; the state owner does."""
    params = await consent(await link(api, name))
    assert front_end_query(await api.get(f"/{PREFIX[name]}/callback", query=params))
    leaked = await api.get(
        f"/{PREFIX[name]}/get/token", query=token_query(name, params, with_state=False)
    )
    assert (leaked.status, leaked.body["error"]) == (400, "invalid_request")
    assert "state" in leaked.body["error_description"]
    assert fake_providers[name].calls["token"] == 0
    owner = await api.get(
        f"/{PREFIX[name]}/get/token", query=token_query(name, params, with_state=True)
    )
    assert owner.status == 200, owner.body


@pytest.mark.parametrize("flow_overrides", [REQUIRE_BINDING])
@pytest.mark.parametrize("provider_overrides", [EVERY_FRONT_END])
async def test_with_binding_required_a_browser_checked_flow_needs_no_state(
    api, provider_overrides, flow_overrides
):
    redirect = await api.get("/vk/link", query={"redirect": "1"})
    params = await consent(redirect.headers["Location"])
    callback = await api.get("/vk/callback", query=params, headers=cookie_header(redirect))
    front_end_query(callback)
    tokens = await api.get("/vk/get/token", query=token_query("vk", params, with_state=False))
    assert tokens.status == 200, tokens.body


@pytest.mark.parametrize("name", PROVIDERS)
async def test_an_attackers_code_with_a_victims_state_spends_nothing(api, fake_providers, name):
    """D13: the provider refuses the foreign code (PKCE); the victim's state still works."""
    victim = await consent(await link(api, name))
    attacker = await consent(await link(api, name))
    attack = await api.get(
        f"/{PREFIX[name]}/get/token",
        query={**token_query(name, attacker, with_state=False), "state": victim["state"]},
    )
    assert (attack.status, attack.body["error"]) == (400, "invalid_grant")
    good = await api.get(
        f"/{PREFIX[name]}/get/token", query=token_query(name, victim, with_state=True)
    )
    assert good.status == 200, good.body


@pytest.mark.parametrize("provider_overrides", [EVERY_FRONT_END])
async def test_a_callback_cannot_be_replayed_or_get_another_code(api, fake_vk, provider_overrides):
    """D13: the first callback attaches its code; a replay or another code goes nowhere."""
    victim = await consent(await link(api, "vk"))
    assert front_end_query(await api.get("/vk/callback", query=victim))["code"] == victim["code"]
    attacker = await consent(await link(api, "vk"))
    for replay in (victim, {**attacker, "state": victim["state"]}):
        answer = front_end_query(await api.get("/vk/callback", query=replay))
        assert answer["error"] == "invalid_state" and "code" not in answer
    stolen = await api.get("/vk/get/token", query=token_query("vk", attacker, with_state=False))
    assert (stolen.status, stolen.body["error"]) == (400, "invalid_state")
    tokens = await api.get("/vk/get/token", query=token_query("vk", victim, with_state=False))
    assert tokens.status == 200, tokens.body
    assert fake_vk.calls["token"] == 1


@pytest.mark.parametrize("provider_overrides", [EVERY_FRONT_END])
async def test_the_front_end_gets_only_the_flow_parameters(api, provider_overrides):
    """D15: `&redirect=https://evil` and other added parameters are not passed on."""
    params = await consent(await link(api, "yandex"))
    added = {"redirect": "https://evil.example", "error_description": "hi", "next": "//evil"}
    query = front_end_query(await api.get("/yandex/callback", query={**params, **added}))
    assert query == {"code": params["code"], "state": params["state"]}


@pytest.mark.parametrize("provider_overrides", [EVERY_FRONT_END])
async def test_a_provider_error_goes_to_the_front_end_in_our_words(
    api, fake_mailru, provider_overrides
):
    params = await consent(await link(api, "mailru"), deny=True)
    denied = front_end_query(
        await api.get("/mail.ru/callback", query={**params, "error_description": "Call us!"})
    )
    assert denied == {
        "error": "access_denied",
        "error_description": "The user or the provider declined the sign-in.",
        "state": params["state"],
    }
    unknown = front_end_query(
        await api.get("/mail.ru/callback", query={"code": "c", "state": "x" * 43})
    )
    assert unknown["error"] == "invalid_state"
    assert fake_mailru.calls["token"] == 0


@pytest.mark.parametrize(
    ("name", "field", "email", "attached"),
    [
        ("mailru", "email", "Someone@Mail.Ru", True),
        ("mailru", "email", "someone@bk.ru", True),
        ("mailru", "email", "victim@example.com", False),
        ("mailru", "email", "victim@mail.ru.example.com", False),
        ("yandex", "default_email", "someone@yandex.ru", True),
        ("yandex", "default_email", "someone@ya.ru", True),
        ("yandex", "default_email", "victim@gmail.com", False),
        ("vk", "email", "someone@mail.ru", False),
    ],
)
async def test_only_an_email_the_provider_vouches_for_is_attached(
    api, fake_providers, services, user, name, field, email, attached
):
    """D14: an address the provider does not vouch for neither reaches the account nor
    reserves the address: its owner can still register with it afterwards."""
    users = fake_providers[name].users["default"]
    users[field] = email
    pair = (
        await api.get(
            f"/{PREFIX[name]}/registration", query={"access_token": await provider_token(api, name)}
        )
    ).body
    stored = await services.store.get_user(subject(pair))
    normal = email.lower()
    assert stored.email == (normal if attached else None)
    if not attached:
        assert stored.profile["email"] == normal
        owner = await api.post("/authorization/registration", json_body={**user, "email": email})
        assert owner.status == 200, owner.body


@pytest.mark.parametrize("name", PROVIDERS)
async def test_two_codes_for_one_state_give_tokens_once(api, name):
    """The exchange runs before the state is spent, so the spending itself must be atomic:
    the consent page visited twice gives two good codes for one state; one wins."""
    url = await link(api, name)
    first, second = await consent(url), await consent(url)
    assert first["state"] == second["state"] and first["code"] != second["code"]
    responses = await asyncio.gather(
        *(
            api.get(f"/{PREFIX[name]}/get/token", query=token_query(name, p, with_state=True))
            for p in (first, second)
        )
    )
    assert sorted(r.status for r in responses) == [200, 400]
    # Whether the loser reached the provider depends on the interleaving; its answer does not.
    assert [r.body["error"] for r in responses if r.status == 400] == ["invalid_state"]
