"""The Telegram, T-ID and Sber ID fakes themselves refuse what their docs say the real ones
refuse; these talk to the fakes directly, not through vhod."""

from __future__ import annotations

import base64
import hashlib
import secrets
import ssl
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httputil import url_concat
from tornado.ioloop import IOLoop

from tests.fakes.providers import consent
from tests.fakes.providers_2026 import FakeSber, FakeTelegram, FakeTID

REDIRECT = "http://127.0.0.1:8888/cb"


@pytest.fixture
def fakes(io_loop: IOLoop, tmp_path: Any) -> Iterator[dict[str, Any]]:
    started = {"telegram": FakeTelegram(), "tid": FakeTID(), "sber": FakeSber(tmp_path)}
    for fake in started.values():
        fake.redirect_uris = {REDIRECT}
        fake.start()
    yield started
    for fake in started.values():
        io_loop.run_sync(fake.aclose, timeout=5)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def code_of(fake: Any, challenge: str, **extra: str) -> str:
    query = {
        "response_type": "code",
        "client_id": fake.client_id,
        "redirect_uri": REDIRECT,
        "state": secrets.token_urlsafe(32),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    back = await consent(url_concat(fake.url("authorize"), query))
    assert "code" in back, back
    return back["code"]


def basic(fake: Any, secret: str | None = None) -> str:
    pair = f"{fake.client_id}:{fake.client_secret if secret is None else secret}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


async def post(url: str, form: dict[str, str], **kwargs: Any) -> Any:
    request = HTTPRequest(url, method="POST", body=urlencode(form), **kwargs)
    return await AsyncHTTPClient().fetch(request, raise_error=False)


async def test_telegram_fake_refuses_a_wrong_verifier_and_a_missing_client_id(
    fakes: dict[str, Any],
) -> None:
    telegram = fakes["telegram"]
    verifier, challenge = pkce()
    form = {"grant_type": "authorization_code", "redirect_uri": REDIRECT}
    headers = {"Authorization": basic(telegram)}
    code = await code_of(telegram, challenge, scope="openid phone")
    wrong = {**form, "code": code, "code_verifier": "x" * 43, "client_id": telegram.client_id}
    answer = await post(telegram.url("token"), wrong, headers=headers)
    assert answer.code == 400 and b"invalid_grant" in answer.body
    code = await code_of(telegram, challenge, scope="openid phone")
    answer = await post(
        telegram.url("token"), {**form, "code": code, "code_verifier": verifier}, headers=headers
    )
    assert answer.code == 400 and b"client_id is required" in answer.body
    no_openid = url_concat(
        telegram.url("authorize"),
        {"response_type": "code", "client_id": telegram.client_id, "redirect_uri": REDIRECT},
    )
    assert "error" in await consent(no_openid + "&state=s&scope=phone")


async def test_tid_fake_refuses_another_redirect_uri_and_a_scope(fakes: dict[str, Any]) -> None:
    tid = fakes["tid"]
    verifier, challenge = pkce()
    code = await code_of(tid, challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": "http://127.0.0.1:8888/elsewhere",
    }
    answer = await post(tid.url("token"), form, headers={"Authorization": basic(tid)})
    assert answer.code == 400 and b"redirect_uri does not match" in answer.body
    back = await consent(
        url_concat(
            tid.url("authorize"),
            {
                "response_type": "code",
                "client_id": tid.client_id,
                "redirect_uri": REDIRECT,
                "state": "s" * 32,
                "scope": "profile",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
    )
    assert back["error"] == "invalid_request"


async def test_sber_fake_refuses_a_call_without_the_client_certificate_or_rquid(
    fakes: dict[str, Any],
) -> None:
    sber = fakes["sber"]
    verifier, challenge = pkce()
    code = await code_of(
        sber, challenge, client_type="PRIVATE", scope="openid name", nonce=secrets.token_hex(8)
    )
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": REDIRECT,
        "client_id": sber.client_id,
        "client_secret": sber.client_secret,
    }
    accept = {"Accept": "application/json"}
    # No client certificate: the TLS handshake fails, the endpoint never sees the request.
    with pytest.raises((ssl.SSLError, OSError)):
        await AsyncHTTPClient().fetch(
            HTTPRequest(
                sber.url("token"),
                method="POST",
                body=urlencode(form),
                headers={**accept, "rquid": uuid.uuid4().hex},
                ca_certs=str(sber.ca.ca_file),
            )
        )
    assert sber.calls["token"] == 0
    tls = {
        "ca_certs": str(sber.ca.ca_file),
        "client_cert": str(sber.client_cert.cert),
        "client_key": str(sber.client_cert.key),
    }
    answer = await post(sber.url("token"), form, headers=accept, **tls)
    assert answer.code == 400 and b"rquid" in answer.body
    # Refused before the code was looked at: the same call with an rquid succeeds.
    answer = await post(
        sber.url("token"), form, headers={**accept, "rquid": uuid.uuid4().hex}, **tls
    )
    assert answer.code == 200, answer.body
    assert "error" in await consent(
        url_concat(
            sber.url("authorize"),
            {
                "response_type": "code",
                "client_id": sber.client_id,
                "redirect_uri": REDIRECT,
                "state": "s" * 32,
                "scope": "openid name",
                "client_type": "PRIVATE",  # no nonce
            },
        )
    )
