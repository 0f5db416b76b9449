"""VK ID, Mail.ru and Yandex against strict fake servers over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from core.domain.errors import ApiError
from providers.base import (
    OAuthProvider,
    Profile,
    ProviderTokens,
    code_challenge,
    new_code_verifier,
    new_state,
)
from providers.mailru import MailRuProvider
from providers.vk import VKProvider
from providers.yandex import YandexProvider
from tests.fakes.providers import (
    FakeMailRu,
    FakeProvider,
    FakeProviders,
    FakeVK,
    FakeYandex,
    Recorded,
    consent,
)

PUBLIC_URL = "http://127.0.0.1:8888"
CLASSES: dict[str, type[OAuthProvider]] = {
    "vk": VKProvider,
    "mailru": MailRuProvider,
    "yandex": YandexProvider,
}
ALL = pytest.mark.parametrize("name", list(CLASSES))
SHORT = 0.3  # seconds: the timeout of the hang tests


def provider_for(fake: FakeProvider, *, timeout: float = 5, **section: Any) -> OAuthProvider:
    cls = CLASSES[fake.name]
    settings = cls.load_settings(fake.section(**section))
    return cls(settings, public_url=PUBLIC_URL, connect_timeout=timeout, request_timeout=timeout)


class Flow:
    """One sign-in up to the callback: what a handler would hold when it calls exchange."""

    def __init__(self, provider: OAuthProvider, params: dict[str, str], verifier: str, state: str):
        self.provider, self.params, self.verifier, self.state = provider, params, verifier, state

    async def exchange(self, **changes: Any) -> ProviderTokens:
        kwargs: dict[str, Any] = {
            "code_verifier": self.verifier,
            "state": self.state,
            "extra": self.params,
        }
        kwargs.update(changes)
        return await self.provider.exchange(self.params["code"], **kwargs)


async def start(provider: OAuthProvider, user: str | None = None) -> Flow:
    state, verifier = new_state(), new_code_verifier()
    url = provider.authorization_url(state, code_challenge(verifier))
    params = await consent(url, user=user)
    assert params["state"] == state and params["code"]
    return Flow(provider, params, verifier, state)


async def refused(awaitable: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await awaitable
    return caught.value


# ---- the whole flow, per provider ---------------------------------------------------------


@dataclass(frozen=True)
class FlowCase:
    """One row of the flow table (social-core's OAuth2Test shape): which fake, what its user
    info says, the Profile vhod must make of it, and how the requests must look on the wire."""

    name: str
    user: dict[str, Any]  # merged over the fake's default user
    profile: Profile
    token_request: Callable[[Recorded, Flow], None]
    userinfo_request: Callable[[Recorded, ProviderTokens], None]


def vk_token_request(request: Recorded, flow: Flow) -> None:
    # A public client: no secret anywhere, device_id from the callback, the raw verifier.
    assert "client_secret" not in request.form and "Authorization" not in request.headers
    assert request.form["device_id"] == [flow.params["device_id"]]
    assert request.form["code_verifier"] == [flow.verifier]
    assert request.form["state"] == [flow.state]


def vk_userinfo_request(request: Recorded, tokens: ProviderTokens) -> None:
    assert request.method == "POST" and request.form["access_token"] == [tokens.access_token]


def basic_auth_token_request(request: Recorded, flow: Flow) -> None:
    assert request.headers["Authorization"].startswith("Basic ")
    assert "client_secret" not in request.form
    assert request.form["code_verifier"] == [flow.verifier]


def mailru_userinfo_request(request: Recorded, tokens: ProviderTokens) -> None:
    assert request.query["access_token"] == [tokens.access_token]  # the documented form


def yandex_userinfo_request(request: Recorded, tokens: ProviderTokens) -> None:
    assert request.headers["Authorization"] == f"OAuth {tokens.access_token}"  # not Bearer
    assert request.query == {"format": ["json"]}


NAMES = {"first_name": "Иван", "last_name": "Петров"}
YANDEX_AVATAR = (
    "https://avatars.yandex.net/get-yapic/131652443/kGy4Hgy5eXzxCGVbgDGAB3cBfo-1/islands-200"
)
FLOW_CASES = [
    FlowCase(
        "vk",
        {},
        Profile(
            provider="vk",
            subject="9007199254740993",  # an int64 id stays exact
            email="vk-user@example.com",
            phone="+79991234567",  # VK sends it without "+"
            avatar="https://sun1.userapi.com/impg/avatar.jpg",
            email_verified=False,  # VK's `verified` is about the person
            phone_verified=True,
            **NAMES,
        ),
        vk_token_request,
        vk_userinfo_request,
    ),
    FlowCase(
        "mailru",
        {},
        Profile(
            provider="mailru",
            subject="10795631207138211234",  # the id, never the email
            email="mailru-user@example.com",
            avatar="https://filin.mail.ru/pic?d=abc",
            email_verified=False,  # not a Mail.ru mailbox
            **NAMES,
        ),
        basic_auth_token_request,
        mailru_userinfo_request,
    ),
    FlowCase(
        "mailru",
        {"email": "ivan@inbox.ru"},
        Profile(
            provider="mailru",
            subject="10795631207138211234",
            email="ivan@inbox.ru",
            avatar="https://filin.mail.ru/pic?d=abc",
            email_verified=True,  # Mail.ru's own mailbox
            **NAMES,
        ),
        basic_auth_token_request,
        mailru_userinfo_request,
    ),
    FlowCase(
        "yandex",
        {},
        Profile(
            provider="yandex",
            subject="1130000012345678",
            email="yandex-user@example.com",
            phone="+79991234567",
            avatar=YANDEX_AVATAR,
            email_verified=False,
            phone_verified=True,
            **NAMES,
        ),
        basic_auth_token_request,
        yandex_userinfo_request,
    ),
    FlowCase(
        "yandex",
        {"default_email": "ivan@ya.ru"},
        Profile(
            provider="yandex",
            subject="1130000012345678",
            email="ivan@ya.ru",
            phone="+79991234567",
            avatar=YANDEX_AVATAR,
            email_verified=True,  # a Yandex mailbox
            phone_verified=True,
            **NAMES,
        ),
        basic_auth_token_request,
        yandex_userinfo_request,
    ),
]


@pytest.mark.parametrize("case", FLOW_CASES, ids=lambda c: f"{c.name}-{c.profile.email}")
async def test_the_whole_flow(fake_providers: FakeProviders, case: FlowCase) -> None:
    """authorize → exchange → user info, per provider, as the wire and the Profile see it."""
    fake = fake_providers[case.name]
    fake.users["default"].update(case.user)
    flow = await start(provider_for(fake))
    tokens = await flow.exchange()
    assert tokens.access_token and tokens.expires_in == 3600
    profile = await flow.provider.fetch_profile(tokens.access_token)
    assert profile == case.profile
    case.token_request(next(r for r in fake.requests if r.endpoint == "token"), flow)
    case.userinfo_request(next(r for r in fake.requests if r.endpoint == "userinfo"), tokens)


async def test_vk_token_answer_keeps_the_int64_user_id_exact(fake_vk: FakeVK) -> None:
    flow = await start(provider_for(fake_vk))
    assert {"device_id", "type", "expires_in"} <= set(flow.params)
    tokens = await flow.exchange()
    assert tokens.raw["user_id"] == 9007199254740993  # an exact int, not a float
    assert tokens.refresh_token


async def test_vk_user_id_given_as_a_big_json_integer_stays_exact(fake_vk: FakeVK) -> None:
    fake_vk.users["default"]["user_id"] = 9007199254740993  # a JSON number above 2**53
    provider = provider_for(fake_vk)
    profile = await provider.fetch_profile(fake_vk.mint_token())
    assert profile.subject == "9007199254740993"


async def test_vk_never_sends_a_configured_secret(fake_vk: FakeVK) -> None:
    flow = await start(provider_for(fake_vk, client_secret="configured-by-mistake"))
    assert (await flow.exchange()).access_token
    assert all("client_secret" not in r.form for r in fake_vk.requests)


async def test_vk_without_phone_scope_gives_no_phone(fake_vk: FakeVK) -> None:
    provider = provider_for(fake_vk, scope="email")
    flow = await start(provider)
    profile = await provider.fetch_profile((await flow.exchange()).access_token)
    assert profile.phone is None and profile.email == "vk-user@example.com"


async def test_yandex_social_account_without_default_email(fake_yandex: FakeYandex) -> None:
    provider = provider_for(fake_yandex)
    profile = await provider.fetch_profile(fake_yandex.mint_token("no_email"))
    assert profile.email is None and profile.avatar is None and profile.phone is None
    assert profile.subject == "1130000087654321"


async def test_yandex_takes_only_the_default_email_never_a_guess(fake_yandex: FakeYandex) -> None:
    fake_yandex.users["no_email"]["emails"] = ["old@example.com", "other@example.com"]
    profile = await provider_for(fake_yandex).fetch_profile(fake_yandex.mint_token("no_email"))
    assert profile.email is None


@ALL
async def test_extra_request_params_cannot_change_the_redirect_uri(
    fake_providers: FakeProviders, name: str
) -> None:
    fake = fake_providers[name]
    flow = await start(provider_for(fake))
    evil = {**flow.params, "redirect_uri": "https://evil.example/cb", "client_id": "evil"}
    assert (await flow.exchange(extra=evil)).access_token
    token_request = next(r for r in fake.requests if r.endpoint == "token")
    assert token_request.form["redirect_uri"] == [f"{PUBLIC_URL}/{CLASSES[name].prefix}/callback"]


# ---- refusals at the token endpoint -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("vk", "verifier is missing or invalid"),
        ("mailru", "code_verifier does not match"),
        ("yandex", "Code verifier is not valid"),
    ],
)
async def test_wrong_verifier_is_invalid_grant_with_the_providers_text(
    fake_providers: FakeProviders, name: str, text: str
) -> None:
    flow = await start(provider_for(fake_providers[name]))
    error = await refused(flow.exchange(code_verifier=new_code_verifier()))
    assert (error.status, error.code) == (400, "invalid_grant")
    assert text in error.description


@ALL
async def test_a_code_works_once(fake_providers: FakeProviders, name: str) -> None:
    flow = await start(provider_for(fake_providers[name]))
    await flow.exchange()
    error = await refused(flow.exchange())
    assert (error.status, error.code) == (400, "invalid_grant")
    assert "already been used" in error.description


async def test_vk_missing_device_id_is_refused_before_calling_vk(fake_vk: FakeVK) -> None:
    flow = await start(provider_for(fake_vk))
    error = await refused(flow.exchange(extra={}))
    assert (error.status, error.code) == (400, "invalid_request")
    assert "device_id" in error.description
    assert fake_vk.calls["token"] == 0


@pytest.mark.parametrize("name", ["mailru", "yandex"])
async def test_a_bad_client_secret_is_a_configuration_problem_naming_the_client_authentication(
    fake_providers: FakeProviders, name: str
) -> None:
    fake = fake_providers[name]
    flow = await start(provider_for(fake, client_secret="wrong-secret"))
    error = await refused(flow.exchange())
    # Not the user's bad code: our configuration, and the description says which part.
    assert (error.status, error.code) == (502, "provider_unavailable")
    assert "client authentication (client_secret_basic)" in error.description
    assert f"providers.{name}" in error.description
    assert "invalid_client" in error.description


async def test_mailru_error_in_http_200_is_invalid_grant(fake_mailru: FakeMailRu) -> None:
    flow = await start(provider_for(fake_mailru))
    await flow.exchange()
    # The fake answers a replayed code the Mail.ru way: HTTP 200 with an error body.
    credentials = base64.b64encode(f"{fake_mailru.client_id}:{fake_mailru.client_secret}".encode())
    raw = await AsyncHTTPClient().fetch(
        fake_mailru.url("token"),
        method="POST",
        headers={"Authorization": f"Basic {credentials.decode()}"},
        body=urlencode({"grant_type": "authorization_code", "code": flow.params["code"]}),
        raise_error=False,
    )
    assert raw.code == 200 and b'"error_code": 4' in raw.body
    error = await refused(flow.exchange())
    assert (error.status, error.code) == (400, "invalid_grant")


async def test_unconfigured_provider_calls_nobody(fake_mailru: FakeMailRu) -> None:
    provider = provider_for(fake_mailru, client_secret="")
    error = await refused(provider.exchange("code", code_verifier="v" * 43, state="s", extra={}))
    assert error.status == 503
    error = await refused(provider.fetch_profile("token"))
    assert error.status == 503
    assert fake_mailru.calls["token"] == fake_mailru.calls["userinfo"] == 0


# ---- refusals at user info ----------------------------------------------------------------


@ALL
async def test_token_of_another_app_is_invalid_provider_token(
    fake_providers: FakeProviders, name: str
) -> None:
    fake = fake_providers[name]
    error = await refused(
        provider_for(fake).fetch_profile(fake.mint_token(client_id="another-app"))
    )
    assert (error.status, error.code) == (401, "invalid_provider_token")
    assert fake.calls["userinfo"] == 1


@ALL
async def test_revoked_and_unknown_tokens_are_invalid_provider_token(
    fake_providers: FakeProviders, name: str
) -> None:
    fake = fake_providers[name]
    provider = provider_for(fake)
    token = fake.mint_token()
    assert (await provider.fetch_profile(token)).subject
    fake.revoke(token)
    for bad in (token, "never-issued"):
        error = await refused(provider.fetch_profile(bad))
        assert (error.status, error.code) == (401, "invalid_provider_token")


async def test_mailru_unknown_token_in_http_200_is_invalid_provider_token(
    fake_mailru: FakeMailRu,
) -> None:
    raw = await AsyncHTTPClient().fetch(
        fake_mailru.url("userinfo") + "?access_token=nope", raise_error=False
    )
    assert raw.code == 200 and b"token not found" in raw.body
    error = await refused(provider_for(fake_mailru).fetch_profile("nope"))
    assert (error.status, error.code) == (401, "invalid_provider_token")
    assert "token not found" in error.description


# ---- the provider is down, slow or confused (OA5) -----------------------------------------


@ALL
async def test_provider_down_is_502(fake_providers: FakeProviders, name: str) -> None:
    fake = fake_providers[name]
    up = await start(provider_for(fake))
    down = provider_for(fake, down=True)
    error = await refused(_exchange_with(down, up))
    assert (error.status, error.code) == (502, "provider_unavailable")
    error = await refused(down.fetch_profile(fake.mint_token()))
    assert (error.status, error.code) == (502, "provider_unavailable")
    assert fake.calls["token"] == fake.calls["userinfo"] == 0


def _exchange_with(provider: OAuthProvider, flow: Flow) -> Any:
    return provider.exchange(
        flow.params["code"], code_verifier=flow.verifier, state=flow.state, extra=flow.params
    )


class RecordingClient:
    """The shared HTTP client, remembering each request as the provider built it."""

    def __init__(self) -> None:
        self.requests: list[HTTPRequest] = []

    async def fetch(self, request: HTTPRequest, **kwargs: Any) -> Any:
        self.requests.append(request)
        return await AsyncHTTPClient().fetch(request, **kwargs)


@ALL
async def test_hanging_provider_is_502_by_the_configured_timeout(
    fake_providers: FakeProviders, name: str
) -> None:
    """The mechanism, not a stopwatch: the fake holds the request, vhod's client gives up
    with the configured timeouts (the 599 path), and the answer is 502."""
    fake = fake_providers[name]
    client = RecordingClient()
    cls = CLASSES[name]
    provider = cls(
        cls.load_settings(fake.section()),
        public_url=PUBLIC_URL,
        http_client=client,  # type: ignore[arg-type]
        connect_timeout=SHORT,
        request_timeout=SHORT,
    )
    flow = await start(provider)
    fake.set_mode("hang")
    for call, endpoint in (
        (flow.exchange(), "token"),
        (provider.fetch_profile(fake.mint_token()), "userinfo"),
    ):
        # A hang guard only, far above SHORT: the test must not wait forever on a bug.
        error = await refused(asyncio.wait_for(call, timeout=30))
        assert (error.status, error.code) == (502, "provider_unavailable")
        assert "did not answer in time" in error.description
        assert fake.calls[endpoint] == 1  # it arrived, and was never answered
    assert [(r.connect_timeout, r.request_timeout) for r in client.requests] == [(SHORT, SHORT)] * 2


@pytest.mark.parametrize("mode", ["garbage", "array", "server_error"])
@ALL
async def test_answers_that_are_not_the_documented_json_are_502(
    fake_providers: FakeProviders, name: str, mode: str
) -> None:
    fake = fake_providers[name]
    provider = provider_for(fake)
    flow = await start(provider)
    token = fake.mint_token()
    fake.set_mode(mode)
    for call in (flow.exchange(), provider.fetch_profile(token)):
        error = await refused(call)
        assert (error.status, error.code) == (502, "provider_unavailable")


@ALL
async def test_redirects_are_not_followed(fake_providers: FakeProviders, name: str) -> None:
    fake = fake_providers[name]
    provider = provider_for(fake)
    flow = await start(provider)
    fake.set_mode("redirect")
    for call in (flow.exchange(), provider.fetch_profile(fake.mint_token())):
        error = await refused(call)
        assert (error.status, error.code) == (502, "provider_unavailable")
    assert fake.calls["authorize"] == 1  # only the consent; the redirects were not followed


@ALL
async def test_token_answer_without_access_token_is_502(
    fake_providers: FakeProviders, name: str
) -> None:
    fake = fake_providers[name]
    flow = await start(provider_for(fake))
    fake.set_mode("no_access_token", "token")
    error = await refused(flow.exchange())
    assert (error.status, error.code) == (502, "provider_unavailable")


async def test_vk_returning_another_state_is_refused(fake_vk: FakeVK) -> None:
    flow = await start(provider_for(fake_vk))
    fake_vk.set_mode("wrong_state", "token")
    error = await refused(flow.exchange())
    assert (error.status, error.code) == (502, "provider_unavailable")
    assert "state" in error.description


async def test_profile_without_user_id_is_502(fake_yandex: FakeYandex) -> None:
    del fake_yandex.users["default"]["id"]
    error = await refused(provider_for(fake_yandex).fetch_profile(fake_yandex.mint_token()))
    assert (error.status, error.code) == (502, "provider_unavailable")


async def test_a_fault_is_described_without_the_token(fake_mailru: FakeMailRu) -> None:
    """The description is what the flow logs (once, as a security event): it must say what
    went wrong and carry no token."""
    provider = provider_for(fake_mailru)
    token = fake_mailru.mint_token()
    fake_mailru.set_mode("garbage")
    error = await refused(provider.fetch_profile(token))
    assert "not JSON" in error.description
    assert token not in error.description and "access_token=" not in error.description
