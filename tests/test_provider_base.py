"""The provider base class without a network: PKCE, state, the authorization URL, settings."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from core.domain.errors import ApiError
from providers.base import (
    OAuthProvider,
    Profile,
    ProviderRequest,
    ProviderSettings,
    ProviderTokens,
    code_challenge,
    e164_or_none,
    in_own_mailbox,
    new_code_verifier,
    new_state,
    subject_of,
)
from providers.mailru import MailRuProvider
from providers.vk import OKProvider, VKProvider
from providers.yandex import YandexProvider

PUBLIC_URL = "https://auth.example.com"
URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")


def make(cls: type[OAuthProvider], **section: Any) -> OAuthProvider:
    section.setdefault("client_id", "our-client")
    section.setdefault("client_secret", "our-secret")
    return cls(cls.load_settings(section), public_url=PUBLIC_URL + "/")


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# ---- PKCE and state (RFC 7636, OA1, OA2) -------------------------------------------------


def test_challenge_is_unpadded_base64url_of_sha256_of_verifier() -> None:
    for _ in range(50):
        verifier = new_code_verifier()
        expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        challenge = code_challenge(verifier)
        assert challenge == expected.decode().rstrip("=")
        assert "=" not in challenge and len(challenge) == 43


def test_challenge_matches_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_verifier_length_and_alphabet() -> None:
    for _ in range(200):
        verifier = new_code_verifier()
        # VK ID accepts only this subset of RFC 7636's unreserved characters.
        assert re.fullmatch(r"[A-Za-z0-9_-]{43,128}", verifier), verifier


def test_state_is_long_url_safe_and_fresh() -> None:
    states = {new_state() for _ in range(200)}
    assert len(states) == 200
    for state in states:
        assert len(state) >= 32 and URL_SAFE.fullmatch(state)
        assert len(state) * 6 >= 128  # base64url: 6 bits per character


def test_verifiers_differ() -> None:
    assert len({new_code_verifier() for _ in range(200)}) == 200


# ---- authorization URL (OA2, OA3) ---------------------------------------------------------


@pytest.mark.parametrize("cls", [VKProvider, MailRuProvider, YandexProvider])
def test_authorization_url_carries_our_redirect_uri_and_no_verifier(
    cls: type[OAuthProvider],
) -> None:
    provider = make(cls)
    state, verifier = new_state(), new_code_verifier()
    url = provider.authorization_url(state, code_challenge(verifier))
    query = query_of(url)
    assert url.startswith(cls.default_authorize_url + "?")
    assert query["redirect_uri"] == [f"{PUBLIC_URL}/{cls.prefix}/callback"]
    assert query["state"] == [state]
    assert query["client_id"] == ["our-client"]
    assert query["response_type"] == ["code"]
    assert query["code_challenge"] == [code_challenge(verifier)]
    assert query["code_challenge_method"] == ["S256"]
    assert verifier not in url
    assert "code_verifier" not in query
    assert "our-secret" not in url


def test_configured_redirect_uri_wins_over_the_default() -> None:
    provider = make(VKProvider, redirect_uri="https://app.example.com/vk/back")
    url = provider.authorization_url(new_state(), code_challenge(new_code_verifier()))
    assert query_of(url)["redirect_uri"] == ["https://app.example.com/vk/back"]


def test_two_links_have_different_challenges() -> None:
    provider = make(VKProvider)
    first = query_of(provider.authorization_url(new_state(), code_challenge(new_code_verifier())))
    second = query_of(provider.authorization_url(new_state(), code_challenge(new_code_verifier())))
    assert first["code_challenge"] != second["code_challenge"]
    assert first["state"] != second["state"]


def test_scope_and_mail_ru_prefix() -> None:
    vk = query_of(make(VKProvider).authorization_url("s" * 43, code_challenge(new_code_verifier())))
    assert vk["scope"] == ["email phone"]
    legacy = make(MailRuProvider, mode="legacy")
    mailru = legacy.authorization_url("s" * 43, code_challenge(new_code_verifier()))
    assert query_of(mailru)["redirect_uri"] == [f"{PUBLIC_URL}/mail.ru/callback"]
    assert query_of(mailru)["scope"] == ["userinfo"]
    assert "provider" not in query_of(mailru)
    yandex = make(YandexProvider).authorization_url("s" * 43, code_challenge(new_code_verifier()))
    assert "scope" not in query_of(yandex)  # empty: the rights configured at Yandex


def test_pkce_provider_refuses_a_link_without_challenge() -> None:
    with pytest.raises(ValueError, match="code_challenge"):
        make(VKProvider).authorization_url(new_state(), None)


async def test_pkce_provider_refuses_an_exchange_without_verifier() -> None:
    with pytest.raises(ValueError, match="code_verifier"):
        await make(VKProvider).exchange("code", code_verifier=None, state="s", extra={})


def test_unconfigured_provider_answers_503() -> None:
    provider = VKProvider(VKProvider.load_settings({}), public_url=PUBLIC_URL)
    assert not provider.configured
    with pytest.raises(ApiError) as caught:
        provider.authorization_url(new_state(), code_challenge(new_code_verifier()))
    assert (caught.value.status, caught.value.code) == (503, "provider_not_configured")


def test_configured_needs_a_secret_except_for_a_public_client() -> None:
    assert make(VKProvider, client_secret="").configured  # VK ID takes no secret
    assert make(MailRuProvider, client_secret="").configured  # through VK ID, by default
    assert not make(MailRuProvider, client_secret="", mode="legacy").configured
    assert not make(YandexProvider, client_secret="").configured
    assert make(YandexProvider).configured


# ---- settings -----------------------------------------------------------------------------


def test_settings_merge_the_section_over_the_provider_defaults() -> None:
    settings = VKProvider.load_settings(
        {"client_id": "51234567", "token_url": "https://id.vk.com/oauth2/auth"}
    )
    assert settings == ProviderSettings(
        client_id="51234567",
        scope="email phone",
        authorize_url="https://id.vk.ru/authorize",
        token_url="https://id.vk.com/oauth2/auth",
        userinfo_url="https://id.vk.ru/oauth2/user_info",
        options={"host": "id.vk.ru"},
    )


def test_vk_id_defaults_to_id_vk_ru_and_the_old_host_works_when_configured() -> None:
    assert make(VKProvider).settings.authorize_url == "https://id.vk.ru/authorize"
    old = make(VKProvider, host="id.vk.com").settings
    assert (old.authorize_url, old.token_url, old.userinfo_url) == (
        "https://id.vk.com/authorize",
        "https://id.vk.com/oauth2/auth",
        "https://id.vk.com/oauth2/user_info",
    )


@pytest.mark.parametrize(
    ("cls", "section", "host", "provider"),
    [
        (VKProvider, {}, "id.vk.ru", None),
        (OKProvider, {}, "id.vk.ru", "ok_ru"),
        (MailRuProvider, {}, "id.vk.ru", "mail_ru"),
        (MailRuProvider, {"mode": "legacy"}, "oauth.mail.ru", None),
    ],
)
def test_which_sign_in_each_built_in_asks_for(
    cls: type[OAuthProvider], section: dict[str, str], host: str, provider: str | None
) -> None:
    url = make(cls, **section).authorization_url(new_state(), code_challenge(new_code_verifier()))
    assert urlsplit(url).hostname == host
    assert query_of(url).get("provider") == ([provider] if provider else None)


def test_mail_ru_mode_is_one_of_two() -> None:
    with pytest.raises(ValueError, match=r"providers.mailru.mode: expected one of vkid, legacy"):
        MailRuProvider.load_settings({"mode": "oauth"})
    assert "client_secret" not in repr(MailRuProvider.load_settings({"client_secret": "s3cr3t"}))
    assert "s3cr3t" not in repr(MailRuProvider.load_settings({"client_secret": "s3cr3t"}))


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"client_idd": "x"}, r"^providers\.vk\.client_idd: unknown key$"),
        ({"client_id": 51234567}, r"^providers\.vk\.client_id: expected str, got int \(quote"),
        ({"scope": ["email"]}, r"^providers\.vk\.scope: expected str, got list$"),
        ({"client_secret": None}, r"^providers\.vk\.client_secret: expected str, got NoneType$"),
        ({"redirect_uri": 1}, r"^providers\.vk\.redirect_uri: expected str or null, got int"),
        ({"token_url": "http://id.vk.com/auth"}, r"^providers\.vk\.token_url: must be https"),
        ({"userinfo_url": "id.vk.com/user_info"}, r"^providers\.vk\.userinfo_url: expected an"),
        ({"authorize_url": ""}, r"^providers\.vk\.authorize_url: a URL is required$"),
        ({"redirect_uri": "/vk/callback"}, r"^providers\.vk\.redirect_uri: expected an absolute"),
        ({"frontend_redirect": "//evil.example"}, r"^providers\.vk\.frontend_redirect: a rel"),
        # Browsers read a backslash as a slash and drop tabs: both lead to another host.
        ({"frontend_redirect": "/\\evil.example"}, r"^providers\.vk\.frontend_redirect: a rel"),
        ({"frontend_redirect": "/\t/evil.example"}, r"^providers\.vk\.frontend_redirect: a rel"),
        ({"frontend_redirect": "/\\t/evil.example"}, r"^providers\.vk\.frontend_redirect: a "),
        ({"frontend_redirect": "https://app.example\\@evil"}, r"frontend_redirect: holds"),
        ({"frontend_redirect": "https://user@evil.example/"}, r"frontend_redirect: a URL with"),
        ({"frontend_redirect": "javascript:alert(1)"}, r"frontend_redirect: expected an abs"),
    ],
)
def test_settings_errors_name_the_key(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VKProvider.load_settings(section)


def test_settings_accept_loopback_http_relative_frontend_and_blank_optionals() -> None:
    settings = YandexProvider.load_settings(
        {
            "token_url": "http://127.0.0.1:9999/token",
            "userinfo_url": "http://localhost:9999/info",
            "frontend_redirect": "/app/signed-in",
            "redirect_uri": "",
        }
    )
    assert settings.token_url == "http://127.0.0.1:9999/token"
    assert settings.frontend_redirect == "/app/signed-in"
    assert settings.redirect_uri is None


# ---- the template is not overridable; mapping helpers -------------------------------------


@pytest.mark.parametrize("method", ["exchange", "fetch_profile", "authorization_url"])
def test_a_provider_cannot_override_the_template(method: str) -> None:
    with pytest.raises(TypeError, match=f"overrides {method}"):
        type("Rogue", (VKProvider,), {method: lambda self, *a, **k: None})


def test_tokens_and_secrets_stay_out_of_repr() -> None:
    tokens = ProviderTokens(access_token="AT-secret", refresh_token="RT-secret", expires_in=5)
    assert "secret" not in repr(tokens)
    assert "our-secret" not in repr(make(MailRuProvider))


def test_subject_keeps_big_integers_exact_and_refuses_floats() -> None:
    assert subject_of(9007199254740993) == "9007199254740993"
    assert subject_of(" 42 ") == "42"
    with pytest.raises(TypeError):
        subject_of(9007199254740993.0)
    with pytest.raises(TypeError):
        subject_of(True)
    with pytest.raises(ValueError):
        subject_of("")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("79991234567", "+79991234567"),
        ("+79991234567", "+79991234567"),
        ("+7 (999) 123-45-67", "+79991234567"),
        ("7999***4567", None),  # VK masks phones without the extended access
        ("", None),
        (None, None),
        (79991234567, None),
    ],
)
def test_phone_becomes_e164(raw: Any, expected: str | None) -> None:
    assert e164_or_none(raw) == expected


def test_profile_defaults_to_unverified_email() -> None:
    assert Profile(provider="vk", subject="1", email="a@example.com").email_verified is False


def test_own_mailbox_is_an_exact_domain() -> None:
    domains = ("mail.ru", "bk.ru")
    assert in_own_mailbox("Ivan@Mail.RU", domains)
    for email in ("ivan@mail.ru.evil.example", "ivan@evilmail.ru", "a@b@mail.ru", "@mail.ru", None):
        assert not in_own_mailbox(email, domains)


# ---- nothing malformed goes out, whatever a provider module builds (F1) -------------------


class NoNetwork:
    """An HTTP client that fails the test if anything is sent."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def fetch(self, request: Any, **kwargs: Any) -> Any:
        self.sent.append(request)
        raise AssertionError(f"a request went out: {request.url}")


class HeaderPlugin(OAuthProvider):
    """A plugin that puts the token into a header of its own, and a display name too."""

    name, prefix, title = "header_plugin", "header-plugin", "Header Plugin"
    default_authorize_url = "https://id.example/authorize"
    default_token_url = "https://id.example/token"
    default_userinfo_url = "https://id.example/userinfo"
    client_name = "Ivan"

    def build_userinfo_request(self, access_token: str) -> ProviderRequest:
        headers = {"X-Token": access_token, "X-Client": self.client_name}
        return ProviderRequest("GET", self.settings.userinfo_url, headers=headers)

    def to_profile(self, userinfo: dict[str, Any]) -> Profile:
        return Profile(provider=self.name, subject=subject_of(userinfo["id"]))


def no_network(cls: type[OAuthProvider]) -> tuple[OAuthProvider, NoNetwork]:
    client = NoNetwork()
    settings = cls.load_settings({"client_id": "our-client", "client_secret": "our-secret"})
    return cls(settings, public_url=PUBLIC_URL, http_client=client), client  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", [VKProvider, MailRuProvider, YandexProvider, HeaderPlugin])
@pytest.mark.parametrize("token", ["\U000bf430", "тест", "a b", "a\r\nX: y", "=abc", "a" * 4097])
async def test_a_token_that_is_no_bearer_token_never_leaves(
    cls: type[OAuthProvider], token: str
) -> None:
    provider, client = no_network(cls)
    with pytest.raises(ApiError) as caught:
        await provider.fetch_profile(token)
    assert (caught.value.status, caught.value.code) == (401, "invalid_provider_token")
    assert client.sent == []


@pytest.mark.parametrize("cls", [VKProvider, MailRuProvider, YandexProvider])
@pytest.mark.parametrize(
    ("code", "device_id"), [("\U000bf430", "d"), ("a b", "d"), ("c", "é"), ("c", "a\nb")]
)
async def test_a_code_or_callback_value_outside_visible_ascii_never_leaves(
    cls: type[OAuthProvider], code: str, device_id: str
) -> None:
    provider, client = no_network(cls)
    if device_id != "d" and not cls.callback_params:
        return  # only VK has a callback value to check
    with pytest.raises(ApiError) as caught:
        await provider.exchange(
            code, code_verifier="v" * 43, state=new_state(), extra={"device_id": device_id}
        )
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")
    assert client.sent == []


async def test_a_header_a_plugin_builds_from_other_text_is_refused_before_sending() -> None:
    provider, client = no_network(HeaderPlugin)
    provider.client_name = "Иван"  # type: ignore[attr-defined]
    with pytest.raises(ApiError) as caught:
        await provider.fetch_profile("a-good-token")
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")
    assert client.sent == []
