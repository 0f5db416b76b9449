"""Strict fake VK ID, Mail.ru and Yandex servers on 127.0.0.1, for provider and end-to-end tests.

tests/conftest.py loads this module as a plugin, so its fixtures are everywhere:

    async def test_x(fake_providers):
        config = {"providers": fake_providers.sections()}   # every provider points at its fake
        url = ...                                            # vhod's /vk/link answer
        params = await consent(url, user="default")          # what the browser brings back

Each fake follows its provider's documented protocol strictly and refuses what the real one
refuses (or, where the real behaviour is unconfirmed, the stricter reading). It counts calls
per endpoint (`fake.calls["token"]`), records requests (`fake.requests`), and has modes
(`fake.set_mode("hang")`, see MODES). `fake.mint_token(client_id="another-app")` makes a
token of another app.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs, parse_qsl, unquote_plus, urlsplit

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.httputil import url_concat
from tornado.ioloop import IOLoop
from tornado.testing import bind_unused_port
from tornado.web import Application, RequestHandler

ENDPOINTS = ("authorize", "token", "userinfo")
MODES = (
    "normal",
    "hang",  # accept the connection, never answer
    "garbage",  # HTML with 200
    "array",  # JSON that is not an object
    "server_error",  # HTTP 500
    "redirect",  # 302 elsewhere (to this fake's authorize page)
    "no_access_token",  # token: 200 without access_token
    "wrong_state",  # token: echoes another state (VK)
)


class ProtocolError(Exception):
    """A refusal, rendered in the provider's own error shape."""

    def __init__(self, error: str, description: str, status: int | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@dataclass
class Grant:
    """One authorization code as the fake remembers it."""

    client_id: str
    redirect_uri: str | None
    user: str
    scope: str
    state: str | None
    code_challenge: str | None
    challenge_method: str | None
    device_id: str | None = None
    vk_id_provider: str | None = None  # VK ID: the sign-in shown (vkid, ok_ru, mail_ru)


@dataclass
class IssuedToken:
    client_id: str
    user: str
    scope: str
    revoked: bool = False


@dataclass
class Recorded:
    """One request the fake received (headers include Authorization: tests may inspect it)."""

    endpoint: str
    method: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class Incoming:
    """A request to a fake, each parameter once (repeats are refused before)."""

    method: str
    query: dict[str, str]
    form: dict[str, str]
    headers: Any  # tornado.httputil.HTTPHeaders: case-insensitive
    body: bytes = b""

    @property
    def is_form(self) -> bool:
        content_type = self.headers.get("Content-Type", "")
        return content_type.startswith("application/x-www-form-urlencoded")


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list → JSON, str → text/plain, None → empty
    location: str | None = None


class FakeProvider:
    """What every fake shares: server, codes, tokens, counters, modes. Subclasses add rules."""

    name: ClassVar[str]
    paths: ClassVar[dict[str, str]]
    default_client_id: ClassVar[str]
    default_scope: ClassVar[str] = ""  # what authorize grants when no scope is asked for
    mint_scope: ClassVar[str | None] = None  # what mint_token grants; None: default_scope
    state_required: ClassVar[bool] = True
    redirect_uri_required: ClassVar[bool] = True
    pkce_required: ClassVar[bool] = False
    challenge_methods: ClassVar[tuple[str, ...]] = ("S256",)

    def __init__(self, *, client_id: str | None = None, client_secret: str | None = None) -> None:
        self.client_id = client_id or self.default_client_id
        self.client_secret = secrets.token_hex(16) if client_secret is None else client_secret
        self.users: dict[str, dict[str, Any]] = self.default_users()
        self.consenting_user = "default"
        self.redirect_uris: set[str] | None = None  # None: any redirect_uri may register
        self.codes: dict[str, Grant] = {}
        self.used_codes: set[str] = set()
        self.tokens: dict[str, IssuedToken] = {}
        self.calls: Counter[str] = Counter()
        self.requests: list[Recorded] = []
        self.modes: dict[str, str] = {}
        self.port: int | None = None
        self._server: HTTPServer | None = None

    # ---- life cycle -------------------------------------------------------------------

    def start(self) -> FakeProvider:
        """Listen on 127.0.0.1 on a free port, on the current IOLoop."""
        sock, self.port = bind_unused_port()
        self._server = HTTPServer(self.make_app())
        self._server.add_sockets([sock])
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()  # also ends hanging requests
            self._server = None

    def make_app(self) -> Application:
        routes = [
            (path, FakeHandler, {"fake": self, "endpoint": ep}) for ep, path in self.paths.items()
        ]
        # No access log: its query strings hold tokens, and vhod's own log tests scan the logs.
        return Application(routes, log_function=lambda handler: None)

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"fake {self.name} is not started")
        return f"http://127.0.0.1:{self.port}"

    def url(self, endpoint: str) -> str:
        return self.base_url + self.paths[endpoint]

    def section(self, *, down: bool = False, **overrides: Any) -> dict[str, Any]:
        """The `providers.<name>` config section pointing at this fake (or at a closed port)."""
        base = closed_port_url() if down else self.base_url
        section: dict[str, Any] = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "authorize_url": base + self.paths["authorize"],
            "token_url": base + self.paths["token"],
            "userinfo_url": base + self.paths["userinfo"],
            **self.section_extras(),
        }
        section.update(overrides)
        return section

    # ---- test controls ----------------------------------------------------------------

    def set_mode(self, mode: str, *endpoints: str) -> None:
        """Misbehave at `endpoints` (default: token and userinfo); "normal" restores."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        for endpoint in endpoints or ("token", "userinfo"):
            self.modes[endpoint] = mode

    def mode(self, endpoint: str) -> str:
        return self.modes.get(endpoint, "normal")

    def mint_token(
        self, user: str = "default", *, client_id: str | None = None, scope: str | None = None
    ) -> str:
        """An access token as if a consent had happened; another `client_id`: another app's."""
        if user not in self.users:
            raise KeyError(f"fake {self.name} has no user {user!r}")
        token = self.token_prefix() + secrets.token_urlsafe(24)
        self.tokens[token] = IssuedToken(
            client_id or self.client_id,
            user,
            scope if scope is not None else self.mint_scope or self.default_scope,
        )
        return token

    def revoke(self, token: str) -> None:
        self.tokens[token].revoked = True

    # ---- protocol, shared ---------------------------------------------------------------

    def authorize(self, args: dict[str, str]) -> Reply:
        """Consent simulated: 302 back to redirect_uri with a code, or an error page."""
        if args.get("client_id") != self.client_id:
            return Reply(400, "unknown client_id")  # never redirect for an unknown client
        redirect_uri = args.get("redirect_uri")
        if redirect_uri is None and self.redirect_uri_required:
            return Reply(400, "redirect_uri is required")
        if redirect_uri is None and self.redirect_uris:
            redirect_uri = sorted(self.redirect_uris)[0]
        if redirect_uri is None:
            return Reply(400, "no redirect_uri registered")
        if self.redirect_uris is not None and redirect_uri not in self.redirect_uris:
            return Reply(400, "redirect_uri is not registered for this app")
        state = args.get("state")

        def back(params: dict[str, str]) -> Reply:
            if state is not None:
                params["state"] = state
            return Reply(302, location=url_concat(redirect_uri, params))

        if args.get("response_type") != "code":
            return back({"error": "unsupported_response_type"})
        if self.state_required and not state:
            return back({"error": "invalid_request", "error_description": "state is required"})
        challenge, method = args.get("code_challenge"), args.get("code_challenge_method")
        if challenge is None and self.pkce_required:
            return back({"error": "invalid_request", "error_description": "code_challenge missing"})
        if challenge is not None:
            method = self.normalise_method(method)
            if method is None:
                return back(
                    {"error": "invalid_request", "error_description": "bad code_challenge_method"}
                )
        problem = self.check_authorize_extras(args)
        if problem:
            return back({"error": "invalid_request", "error_description": problem})
        user = args.get("user") or self.consenting_user
        if args.get("deny") or user not in self.users:
            return back({"error": "access_denied", "error_description": "User denied access"})
        code = self.code_prefix() + secrets.token_urlsafe(32)
        grant = Grant(
            client_id=self.client_id,
            redirect_uri=args.get("redirect_uri"),
            user=user,
            scope=args.get("scope", self.default_scope),
            state=state,
            code_challenge=challenge,
            challenge_method=method,
            vk_id_provider=args.get("provider"),
        )
        self.codes[code] = grant
        return back({"code": code, **self.callback_extras(grant)})

    def token(self, req: Incoming) -> Reply:
        if req.method != "POST":
            raise ProtocolError("invalid_request", "the token endpoint takes POST", 405)
        params = self.token_params(req)
        client_id = self.authenticate_client(params, req.headers)
        if params.get("grant_type") != "authorization_code":
            raise ProtocolError("unsupported_grant_type", "grant_type must be authorization_code")
        code = params.get("code", "")
        if code in self.used_codes:
            raise ProtocolError("invalid_grant", "code has already been used")
        grant = self.codes.pop(code, None)
        if grant is None:
            raise ProtocolError("invalid_grant", "code is invalid or expired")
        self.used_codes.add(code)  # single use, whatever happens next
        if grant.client_id != client_id:
            raise ProtocolError("invalid_grant", "code was issued to another client")
        sent_uri = params.get("redirect_uri")
        # RFC 6749 §4.1.3: the same redirect_uri as at authorize (Yandex: if sent at all).
        if (
            grant.redirect_uri is not None
            and sent_uri != grant.redirect_uri
            and (sent_uri is not None or self.redirect_uri_required)
        ):
            raise ProtocolError("invalid_grant", "redirect_uri does not match")
        self.check_verifier(grant, params.get("code_verifier"))
        self.check_token_extras(grant, params)
        access = self.mint_token(grant.user, client_id=client_id, scope=grant.scope)
        answer = self.token_answer(grant, access)
        if self.mode("token") == "no_access_token":
            answer.pop("access_token", None)
        if self.mode("token") == "wrong_state":
            answer["state"] = secrets.token_urlsafe(32)
        return Reply(200, answer)

    def token_params(self, req: Incoming) -> dict[str, str]:
        """RFC 6749 §4.1.3: the form body. VK also reads the query (as its web SDK sends)."""
        if not req.is_form:
            raise ProtocolError("invalid_request", "expected a form-urlencoded body")
        return req.form

    def check_verifier(self, grant: Grant, verifier: str | None) -> None:
        """RFC 7636 §4.6; a verifier without a challenge is refused too (downgrade)."""
        if grant.code_challenge is None:
            if verifier is not None:
                raise ProtocolError("invalid_request", "code_verifier sent but no challenge given")
            return
        if verifier is None or not (43 <= len(verifier) <= 128):
            raise self.verifier_error()
        if grant.challenge_method == "S256":
            computed = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                .rstrip(b"=")
                .decode()
            )
        else:
            computed = verifier
        if not secrets.compare_digest(computed, grant.code_challenge):
            raise self.verifier_error()

    def basic_credentials(self, headers: Any) -> tuple[str, str] | None:
        value = headers.get("Authorization", "")
        if not value.startswith("Basic "):
            return None
        try:
            decoded = base64.b64decode(value[6:], validate=True).decode()
            raw_id, raw_secret = decoded.split(":", 1)
        except ValueError:
            raise ProtocolError("invalid_client", "malformed Basic credentials", 401) from None
        return unquote_plus(raw_id), unquote_plus(raw_secret)  # RFC 6749 §2.3.1

    def issued(self, token: str | None) -> IssuedToken:
        issued = self.tokens.get(token or "")
        if issued is None or issued.revoked:
            raise self.unknown_token_error()
        return issued

    # ---- per provider -----------------------------------------------------------------

    def default_users(self) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def section_extras(self) -> dict[str, Any]:
        """Provider keys a section needs to talk to this fake (Mail.ru's legacy mode)."""
        return {}

    def check_authorize_extras(self, args: dict[str, str]) -> str | None:
        """An error description for an authorize request the provider refuses, else None."""
        return None

    def code_prefix(self) -> str:
        return ""

    def token_prefix(self) -> str:
        return ""

    def normalise_method(self, method: str | None) -> str | None:
        return method if method in self.challenge_methods else None

    def callback_extras(self, grant: Grant) -> dict[str, str]:
        return {}

    def authenticate_client(self, params: dict[str, str], headers: Any) -> str:
        raise NotImplementedError

    def check_token_extras(self, grant: Grant, params: dict[str, str]) -> None:
        return None

    def token_answer(self, grant: Grant, access_token: str) -> dict[str, Any]:
        return {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": 3600,
            "refresh_token": secrets.token_urlsafe(24),
        }

    def verifier_error(self) -> ProtocolError:
        return ProtocolError("invalid_grant", "code_verifier does not match the code_challenge")

    def unknown_token_error(self) -> ProtocolError:
        return ProtocolError("invalid_token", "access token is invalid, expired or revoked", 401)

    def userinfo(self, req: Incoming) -> Reply:
        raise NotImplementedError

    def error_reply(self, error: ProtocolError) -> Reply:
        return Reply(
            error.status or 400, {"error": error.error, "error_description": error.description}
        )

    def garbage(self) -> Reply:
        return Reply(200, "<html><body>Service temporarily unavailable</body></html>")


class FakeVK(FakeProvider):
    """VK ID 2.1: PKCE mandatory, device_id, public client, POST user_info bound to client_id.

    `provider=` picks the sign-in VK ID shows: vkid (default), ok_ru or mail_ru, each only
    when enabled for the app (`sign_in_methods`); the identity is the VK ID user either way.
    `grants` keeps every authorize request's grant, so tests can see which was asked for."""

    name = "vk"
    paths: ClassVar[dict[str, str]] = {
        "authorize": "/authorize",
        "token": "/oauth2/auth",
        "userinfo": "/oauth2/user_info",
    }
    default_client_id = "51234567"
    default_scope = "vkid.personal_info"
    mint_scope = "vkid.personal_info email phone"
    pkce_required = True
    vk_id_providers = ("vkid", "ok_ru", "mail_ru")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sign_in_methods: set[str] = set(self.vk_id_providers)
        self.grants: list[Grant] = []

    def check_authorize_extras(self, args: dict[str, str]) -> str | None:
        provider = args.get("provider", "vkid")
        if provider not in self.vk_id_providers:
            return "provider is invalid"
        if provider not in self.sign_in_methods:
            return f"{provider} sign-in is not enabled for this app"
        return None

    def default_users(self) -> dict[str, dict[str, Any]]:
        return {
            "default": {
                "user_id": "9007199254740993",  # 2**53 + 1: a float would round it
                "first_name": "Иван",
                "last_name": "Петров",
                "phone": "79991234567",
                "avatar": "https://sun1.userapi.com/impg/avatar.jpg",
                "email": "vk-user@example.com",
                "sex": 2,
                "verified": False,
                "birthday": "01.01.2000",
            },
            "no_email": {"user_id": "1234567890", "first_name": "Анна", "last_name": "Иванова"},
        }

    def code_prefix(self) -> str:
        return "vk2.a."

    def token_prefix(self) -> str:
        return "vk2.a."

    def normalise_method(self, method: str | None) -> str | None:
        return "S256" if (method or "").upper() == "S256" else None  # docs write s256 too

    def callback_extras(self, grant: Grant) -> dict[str, str]:
        self.grants.append(grant)
        grant.device_id = secrets.token_urlsafe(16)
        return {
            "device_id": grant.device_id,
            "type": "code_v2",
            "expires_in": "600",
            "ext_id": secrets.token_hex(8),
        }

    def token_params(self, req: Incoming) -> dict[str, str]:
        if req.body and not req.is_form:
            raise ProtocolError("invalid_request", "expected a form-urlencoded body")
        return {**req.query, **req.form}

    def authenticate_client(self, params: dict[str, str], headers: Any) -> str:
        if "client_secret" in params or "Authorization" in headers:
            raise ProtocolError("invalid_request", "client_secret must not be sent")
        if params.get("client_id") != self.client_id:
            raise ProtocolError("invalid_client", "client_id is missing or invalid", 401)
        return self.client_id

    def check_token_extras(self, grant: Grant, params: dict[str, str]) -> None:
        if params.get("device_id") != grant.device_id:
            raise ProtocolError("invalid_request", "device_id is missing or invalid")
        if params.get("state") != grant.state:
            raise ProtocolError("invalid_request", "state is missing or invalid")

    def verifier_error(self) -> ProtocolError:
        return ProtocolError("invalid_request", "verifier is missing or invalid")

    def token_answer(self, grant: Grant, access_token: str) -> dict[str, Any]:
        return {
            "access_token": access_token,
            "refresh_token": "vk2.a." + secrets.token_urlsafe(24),
            "id_token": "eyJhbGciOiJSUzI1NiJ9.e30." + secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "expires_in": 3600,
            "user_id": int(self.users[grant.user]["user_id"]),  # an int64 here, a string later
            "state": grant.state,
            "scope": grant.scope,
        }

    def userinfo(self, req: Incoming) -> Reply:
        if req.method != "POST":
            raise ProtocolError("invalid_request", "user_info takes POST", 405)
        params = {**req.query, **req.form}
        if not params.get("client_id"):
            raise ProtocolError("invalid_request", "client_id is missing")
        issued = self.issued(params.get("access_token"))
        if params["client_id"] != issued.client_id:
            raise self.unknown_token_error()  # a token of another app looks invalid here
        user = dict(self.users[issued.user])
        scopes = issued.scope.split()
        if "email" not in scopes:
            user.pop("email", None)
        if "phone" not in scopes:
            user.pop("phone", None)
        return Reply(200, {"user": user})

    def unknown_token_error(self) -> ProtocolError:
        return ProtocolError("invalid_token", "access_token is missing or invalid", 401)


class FakeMailRu(FakeProvider):
    """OAuth Mail (oauth.mail.ru, legacy mode): Basic client auth, errors with HTTP 200,
    userinfo ?access_token=. Mail.ru through VK ID is FakeVK with provider=mail_ru."""

    name = "mailru"
    paths: ClassVar[dict[str, str]] = {
        "authorize": "/login",
        "token": "/token",
        "userinfo": "/userinfo",
    }
    default_client_id = "80dcc118c6b44d57916fec6760aadefb"
    default_scope = "userinfo"
    _error_codes: ClassVar[dict[str, int]] = {
        "invalid_request": 2,
        "invalid_client": 3,
        "invalid_grant": 4,
        "unsupported_grant_type": 5,
        "token not found": 6,
    }

    def default_users(self) -> dict[str, dict[str, Any]]:
        return {
            "default": {
                "id": "10795631207138211234",
                "email": "mailru-user@example.com",
                "name": "Иван Петров",
                "first_name": "Иван",
                "last_name": "Петров",
                "nickname": "ivan",
                "image": "https://filin.mail.ru/pic?d=abc",
                "gender": "m",
                "birthday": "01.01.2000",
                "locale": "ru_RU",
            },
        }

    def section_extras(self) -> dict[str, Any]:
        return {"mode": "legacy"}  # this fake is OAuth Mail; the default mode is VK ID

    def authenticate_client(self, params: dict[str, str], headers: Any) -> str:
        if "client_secret" in params:
            raise ProtocolError("invalid_client", "client credentials go in the Basic header")
        credentials = self.basic_credentials(headers)
        if credentials != (self.client_id, self.client_secret):
            raise ProtocolError("invalid_client", "client authentication failed")
        return self.client_id

    def userinfo(self, req: Incoming) -> Reply:
        issued = self.issued(req.query.get("access_token"))
        return Reply(200, {**self.users[issued.user], "client_id": issued.client_id})

    def unknown_token_error(self) -> ProtocolError:
        return ProtocolError("token not found", "token not found")

    def error_reply(self, error: ProtocolError) -> Reply:
        # Mail.ru answers its errors with HTTP 200 whatever they are.
        code = self._error_codes.get(error.error, 1)
        return Reply(
            200, {"error": error.error, "error_code": code, "error_description": error.description}
        )


class FakeYandex(FakeProvider):
    """Yandex ID: optional PKCE (S256/plain), Basic or body client auth, `Authorization: OAuth`."""

    name = "yandex"
    paths: ClassVar[dict[str, str]] = {
        "authorize": "/authorize",
        "token": "/token",
        "userinfo": "/info",
    }
    default_client_id = "4421f9793cae4d529b9e045ba22ca3b6"
    state_required = False
    redirect_uri_required = False
    challenge_methods = ("S256", "plain")

    def default_users(self) -> dict[str, dict[str, Any]]:
        return {
            "default": {
                "id": "1130000012345678",
                "login": "ivan.petrov",
                "psuid": "1.AAAA.psuid",
                "default_email": "yandex-user@example.com",
                "emails": ["yandex-user@example.com"],
                "default_avatar_id": "131652443/kGy4Hgy5eXzxCGVbgDGAB3cBfo-1",
                "is_avatar_empty": False,
                "first_name": "Иван",
                "last_name": "Петров",
                "display_name": "ivan.petrov",
                "real_name": "Иван Петров",
                "sex": "male",
                "birthday": "2000-01-01",
                "default_phone": {"id": 12345678, "number": "+79991234567"},
            },
            "no_email": {  # a social-login account: no default_email, emails empty
                "id": "1130000087654321",
                "login": "social.user",
                "psuid": "1.BBBB.psuid",
                "emails": [],
                "default_avatar_id": "0/0-0",
                "is_avatar_empty": True,
            },
        }

    def authenticate_client(self, params: dict[str, str], headers: Any) -> str:
        basic = self.basic_credentials(headers)
        in_body = "client_secret" in params
        if basic is not None and in_body:  # RFC 6749 §2.3: one method only
            raise ProtocolError("invalid_request", "more than one client authentication", 400)
        credentials = basic or (params.get("client_id"), params.get("client_secret"))
        if credentials != (self.client_id, self.client_secret):
            raise ProtocolError("invalid_client", "Client not found", 401)
        return self.client_id

    def verifier_error(self) -> ProtocolError:
        return ProtocolError("invalid_grant", "Code verifier is not valid")

    def userinfo(self, req: Incoming) -> Reply:
        auth = req.headers.get("Authorization", "")
        if not auth.startswith("OAuth ") or "oauth_token" in req.query:
            return Reply(401, "expected Authorization: OAuth <token>")
        if req.query.get("format") != "json":
            raise ProtocolError("invalid_request", "format=json expected")
        issued = self.tokens.get(auth[6:])
        if issued is None or issued.revoked:
            return Reply(401, "invalid token")  # the body format is unconfirmed: plain text
        user = self.users[issued.user]
        rights = issued.scope.split()
        visible = {
            key: value
            for key, value in user.items()
            if not rights or key in ("id", "login", "psuid") or _yandex_right(key) in rights
        }
        return Reply(200, {**visible, "client_id": issued.client_id})


def _yandex_right(field_name: str) -> str:
    if field_name in ("default_email", "emails"):
        return "login:email"
    if field_name in ("default_avatar_id", "is_avatar_empty"):
        return "login:avatar"
    if field_name == "birthday":
        return "login:birthday"
    if field_name == "default_phone":
        return "login:default_phone"
    return "login:info"


class FakeHandler(RequestHandler):
    """Routes one endpoint of one fake: records, counts, applies the mode, renders."""

    def initialize(self, fake: FakeProvider, endpoint: str) -> None:
        self.fake = fake
        self.endpoint = endpoint
        self._gone: asyncio.Future[None] | None = None

    async def get(self) -> None:
        await self._serve()

    async def post(self) -> None:
        await self._serve()

    def on_connection_close(self) -> None:
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(None)

    async def _serve(self) -> None:
        fake, endpoint = self.fake, self.endpoint
        query = parse_qs(self.request.query, keep_blank_values=True)
        form: dict[str, list[str]] = {}
        content_type = self.request.headers.get("Content-Type", "")
        if self.request.body and content_type.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(self.request.body.decode(), keep_blank_values=True)
        fake.calls[endpoint] += 1
        fake.requests.append(
            Recorded(endpoint, self.request.method or "", query, form, dict(self.request.headers))
        )
        mode = fake.mode(endpoint)
        if mode == "hang":  # answer nothing until the client gives up
            self._gone = asyncio.get_running_loop().create_future()
            await self._gone
            return
        if mode == "garbage":
            return self._render(fake.garbage())
        if mode == "array":
            return self._render(Reply(200, []))
        if mode == "server_error":
            return self._render(Reply(500, "Internal Server Error"))
        if mode == "redirect":
            return self._render(Reply(302, location=fake.url("authorize")))
        try:
            if any(len(v) > 1 for v in (*query.values(), *form.values())):
                # RFC 6749 §3.1: a parameter must not be sent more than once.
                raise ProtocolError("invalid_request", "a parameter is repeated")
            req = Incoming(
                self.request.method or "",
                {k: v[0] for k, v in query.items()},
                {k: v[0] for k, v in form.items()},
                self.request.headers,
                self.request.body or b"",
            )
            if endpoint == "authorize":
                reply = fake.authorize(req.query)
            elif endpoint == "token":
                reply = fake.token(req)
            else:  # userinfo, or another endpoint a fake declares (discovery, jwks, ...)
                reply = getattr(fake, endpoint)(req)
        except ProtocolError as error:
            reply = fake.error_reply(error)
        self._render(reply)

    def _render(self, reply: Reply) -> None:
        self.set_status(reply.status)
        if reply.location is not None:
            self.set_header("Location", reply.location)
        if isinstance(reply.body, dict | list):
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.write(json.dumps(reply.body))  # Python's json keeps int64 ids exact
        elif isinstance(reply.body, str):
            content = "text/html" if reply.body.startswith("<") else "text/plain"
            self.set_header("Content-Type", f"{content}; charset=UTF-8")
            self.write(reply.body)
        self.finish()


@dataclass
class FakeProviders:
    """The three fakes, started together."""

    vk: FakeVK = field(default_factory=FakeVK)
    mailru: FakeMailRu = field(default_factory=FakeMailRu)
    yandex: FakeYandex = field(default_factory=FakeYandex)

    @property
    def all(self) -> dict[str, FakeProvider]:
        return {"vk": self.vk, "mailru": self.mailru, "yandex": self.yandex}

    def __getitem__(self, name: str) -> FakeProvider:
        return self.all[name]

    def start(self) -> FakeProviders:
        for fake in self.all.values():
            fake.start()
        return self

    async def aclose(self) -> None:
        for fake in self.all.values():
            await fake.aclose()

    @property
    def base_urls(self) -> dict[str, str]:
        return {name: fake.base_url for name, fake in self.all.items()}

    def sections(
        self, *, down: tuple[str, ...] = (), **overrides: dict[str, Any]
    ) -> dict[str, Any]:
        """The `providers:` config: each provider pointed at its fake, `down` ones at a
        closed port; `overrides` per provider name (e.g. vk={"frontend_redirect": ...}).
        OK.ru runs through VK ID, so `ok` points at the fake VK ID."""
        sections = {
            name: fake.section(down=name in down, **overrides.get(name, {}))
            for name, fake in self.all.items()
        }
        sections["ok"] = self.vk.section(down="ok" in down, **overrides.get("ok", {}))
        return sections


def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens: connections are refused."""
    sock, port = bind_unused_port()
    sock.close()
    return f"http://127.0.0.1:{port}"


async def consent_redirect(
    authorization_url: str,
    *,
    user: str | None = None,
    deny: bool = False,
    http_client: AsyncHTTPClient | None = None,
) -> str:
    """Play the browser at a fake's authorize URL; return where it redirects (the callback)."""
    extra = {"user": user} if user else {}
    if deny:
        extra["deny"] = "1"
    client = http_client or AsyncHTTPClient()
    response = await client.fetch(
        HTTPRequest(url_concat(authorization_url, extra), follow_redirects=False),
        raise_error=False,
    )
    if response.code != 302:
        body = (response.body or b"").decode(errors="replace")
        raise AssertionError(f"authorize answered {response.code}: {body}")
    return response.headers["Location"]


async def consent(authorization_url: str, **kwargs: Any) -> dict[str, str]:
    """Like `consent_redirect`, but return the callback's query parameters."""
    return dict(parse_qsl(urlsplit(await consent_redirect(authorization_url, **kwargs)).query))


@pytest.fixture
def fake_providers(io_loop: IOLoop) -> Iterator[FakeProviders]:
    """All three fakes listening on 127.0.0.1, closed after the test."""
    fakes = FakeProviders().start()
    yield fakes
    io_loop.run_sync(fakes.aclose, timeout=5)


@pytest.fixture
def fake_vk(fake_providers: FakeProviders) -> FakeVK:
    return fake_providers.vk


@pytest.fixture
def fake_mailru(fake_providers: FakeProviders) -> FakeMailRu:
    return fake_providers.mailru


@pytest.fixture
def fake_yandex(fake_providers: FakeProviders) -> FakeYandex:
    return fake_providers.yandex
