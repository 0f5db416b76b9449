"""Strict fake Telegram Login (OpenID Connect), T-ID (T-Bank) and Sber ID servers on 127.0.0.1,
built from the facts in the providers' public docs (/work/shared/docs/providers-2026.md's
sections 2-4). Strict where the docs are explicit; where they are silent, the stricter
reading or a switch (`FakeTelegram.echo_nonce`, `FakeTID.pkce_required`).

Sber ID's token and user-info endpoints are HTTPS and demand a client certificate signed by
the test CA (mutual TLS, as oauth.sber.ru does); its authorization page is plain HTTP, as the
browser page needs no certificate.
"""

from __future__ import annotations

import re
import secrets
import ssl
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import Application

from tests.fakes.providers import (
    FakeHandler,
    FakeProvider,
    Grant,
    Incoming,
    ProtocolError,
    Reply,
)
from tests.fakes.tls_ca import TestCA

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")


def _code_of(reply: Reply) -> str | None:
    if reply.location is None:
        return None
    return dict(parse_qsl(urlsplit(reply.location).query)).get("code")


class FakeTelegram(FakeProvider):
    """Telegram Login: discovery, /auth, /token (Basic + client_id in the form), JWKS, an
    RS256 id_token carrying the user's claims; no user-info endpoint."""

    name = "telegram"
    paths: ClassVar[dict[str, str]] = {
        "discovery": "/.well-known/openid-configuration",
        "authorize": "/auth",
        "token": "/token",
        "jwks": "/.well-known/jwks.json",
    }
    default_client_id = "123456789"  # the bot's id, digits
    scopes = frozenset({"openid", "profile", "phone", "telegram:bot_access"})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(8)
        # The docs show the nonce in the JS library's id_token only; off: a redirect flow
        # that leaves it out.
        self.echo_nonce = True
        self.nonces: dict[int, str | None] = {}

    def default_users(self) -> dict[str, dict[str, Any]]:
        return {
            "default": {
                "sub": "tg_" + secrets.token_hex(12),  # opaque
                "id": 987654321,
                "name": "Ivan Petrov",
                "preferred_username": "ivan",
                "picture": "https://t.me/i/userpic/320/ivan.jpg",
                "phone_number": "971501234567",  # no "+" (the docs show 971577777777)
            },
            "second": {
                "sub": "tg_" + secrets.token_hex(12),
                "id": 987654322,
                "name": "Anna",
                "preferred_username": "anna",
                "phone_number": "79161234567",
            },
        }

    @property
    def issuer(self) -> str:
        return self.base_url

    def section(self, *, down: bool = False, **overrides: Any) -> dict[str, Any]:
        section = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "issuer": self.issuer,
            **overrides,
        }
        return section

    def discovery(self, req: Incoming) -> Reply:
        return Reply(
            200,
            {
                "issuer": self.issuer,
                "authorization_endpoint": self.url("authorize"),
                "token_endpoint": self.url("token"),
                "jwks_uri": self.url("jwks"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": sorted(self.scopes),
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": ["sub", "iss", "iat", "exp", "name", "phone_number"],
            },
        )

    def jwks(self, req: Incoming) -> Reply:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return Reply(200, {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]})

    def check_authorize_extras(self, args: dict[str, str]) -> str | None:
        asked = (args.get("scope") or "").split()
        if "openid" not in asked:
            return "scope must include openid"
        if set(asked) - self.scopes:
            return "unknown scope"
        return None

    def authorize(self, args: dict[str, str]) -> Reply:
        reply = super().authorize(args)
        code = _code_of(reply)
        if code is not None:
            self.nonces[id(self.codes[code])] = args.get("nonce")
        return reply

    def authenticate_client(self, params: dict[str, str], headers: Any) -> str:
        credentials = self.basic_credentials(headers)
        if credentials is None:
            raise ProtocolError("invalid_client", "Basic client authentication is required", 401)
        if credentials != (self.client_id, self.client_secret):
            raise ProtocolError("invalid_client", "client authentication failed", 401)
        # The docs' token request lists client_id in the form as well.
        if params.get("client_id") != self.client_id:
            raise ProtocolError("invalid_request", "client_id is required")
        return self.client_id

    def token_answer(self, grant: Grant, access_token: str) -> dict[str, Any]:
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "id_token": self.id_token(grant),
        }

    def id_token(self, grant: Grant, **overrides: Any) -> str:
        user, granted = self.users[grant.user], set(grant.scope.split())
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "sub": user["sub"],
            "iat": now,
            "exp": now + 3600,
        }
        if "profile" in granted:
            claims["id"] = user["id"]
            for key in ("name", "preferred_username", "picture"):
                if key in user:
                    claims[key] = user[key]
        if "phone" in granted and user.get("phone_number"):
            claims["phone_number"] = user["phone_number"]
        nonce = self.nonces.pop(id(grant), None)
        if nonce is not None and self.echo_nonce:
            claims["nonce"] = nonce
        claims.update(overrides)
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def userinfo(self, req: Incoming) -> Reply:  # pragma: no cover - not routed
        raise ProtocolError("invalid_request", "Telegram has no user-info endpoint", 404)


class FakeTID(FakeProvider):
    """T-ID: /auth/authorize (no scope parameter), /auth/token with Basic, user info as a
    POST with the bearer token and the client's credentials in the form, introspection."""

    name = "tid"
    paths: ClassVar[dict[str, str]] = {
        "authorize": "/auth/authorize",
        "token": "/auth/token",
        "userinfo": "/userinfo/userinfo",
        "introspect": "/auth/introspect",
    }
    default_client_id = "tid_vhod-test"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Required in App2Web/App2App; for the web flow the docs say nothing.
        self.pkce_required = True

    def default_users(self) -> dict[str, dict[str, Any]]:
        return {
            "default": {
                "sub": str(uuid.uuid4()),
                "name": "Иван Петров",
                "given_name": "Иван",
                "family_name": "Петров",
                "middle_name": "Сергеевич",
                "gender": "male",
                "birthdate": "1990-01-31",
                "phone_number": "+79991112233",
                "email": "ivan.petrov@example.ru",
            }
        }

    def section(self, *, down: bool = False, **overrides: Any) -> dict[str, Any]:
        return super().section(
            down=down, **{"introspection_url": self.url("introspect"), **overrides}
        )

    def check_authorize_extras(self, args: dict[str, str]) -> str | None:
        if "scope" in args:
            return "T-ID takes no scope parameter"
        return None

    def code_prefix(self) -> str:
        return "c."

    def token_prefix(self) -> str:
        return "t."

    def callback_extras(self, grant: Grant) -> dict[str, str]:
        return {"session_state": secrets.token_urlsafe(16)}

    def authenticate_client(self, params: dict[str, str], headers: Any) -> str:
        credentials = self.basic_credentials(headers)
        if credentials is None or credentials != (self.client_id, self.client_secret):
            raise ProtocolError("invalid_client", "client authentication failed", 401)
        return self.client_id

    def token_answer(self, grant: Grant, access_token: str) -> dict[str, Any]:
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 1792,
            "id_token": "eyJhbGciOiJub25lIn0.eyJ0ZWNobmljYWwiOnRydWV9.",  # "technical"
            "refresh_token": secrets.token_urlsafe(24),
        }

    def userinfo(self, req: Incoming) -> Reply:
        if req.method != "POST" or not req.is_form:
            raise ProtocolError("invalid_request", "user info is a form POST", 405)
        authorization = req.headers.get("Authorization", "")
        if not authorization.startswith("Bearer "):
            raise ProtocolError("invalid_token", "a bearer token is required", 401)
        if (req.form.get("client_id"), req.form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            raise ProtocolError("invalid_client", "client_id and client_secret are required", 401)
        issued = self.issued(authorization[7:])
        return Reply(200, dict(self.users[issued.user]))

    def introspect(self, req: Incoming) -> Reply:
        if req.method != "POST" or not req.is_form:
            raise ProtocolError("invalid_request", "introspection is a form POST", 405)
        self.authenticate_client(req.form, req.headers)
        issued = self.tokens.get(req.form.get("token", ""))
        if issued is None or issued.revoked:
            return Reply(200, {"active": False})
        now = int(time.time())
        return Reply(
            200,
            {
                "active": True,
                "scope": ["profile", "phone", "email"],
                "client_id": issued.client_id,
                "token_type": "access_token",
                "exp": now + 1792,
                "iat": now,
                "sub": self.users[issued.user]["sub"],
                "aud": [issued.client_id],
                "iss": "https://id.tbank.ru/",
            },
        )


class FakeSber(FakeProvider):
    """Sber ID: the browser page on HTTP; token and user info on HTTPS demanding a client
    certificate of the test CA, an `rquid` / `x-introspect-rquid` of 32 hex digits, the
    client's credentials in the form (token)."""

    name = "sber"
    paths: ClassVar[dict[str, str]] = {
        "authorize": "/CSAFront/oidc/authorize.do",
        "token": "/ru/prod/tokens/v2/oidc",
        "userinfo": "/ru/prod/sberbankid/v2.1/userinfo",
    }
    default_client_id = "4a1b2c3d-sber-vhod"
    registered_scopes = frozenset({"openid", "name", "email", "mobile", "birthdate"})

    def __init__(self, folder: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ca = TestCA(folder, "sber test CA")
        self.server_cert = self.ca.issue("oauth.sber.test", server=True)
        self.client_cert = self.ca.issue("vhod client", server=False)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.api_port: int | None = None
        self._api_server: HTTPServer | None = None
        self.nonces: dict[int, str] = {}

    def default_users(self) -> dict[str, dict[str, Any]]:
        return {
            "default": {
                "sub": secrets.token_hex(32),
                "family_name": "Петров",
                "given_name": "Иван",
                "middle_name": "Сергеевич",
                "email": "ivan@example.ru",
                "phone_number": "+7 (999) 1234567",
                "birthdate": "31.01.1990",
            }
        }

    # ---- two servers: the browser page, and the mutual-TLS API ---------------------------

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_cert.cert, self.server_cert.key)
        context.load_verify_locations(cafile=self.ca.ca_file)
        context.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no connection
        return context

    def start(self) -> FakeSber:
        def app(*endpoints: str) -> Application:
            routes = [
                (self.paths[ep], FakeHandler, {"fake": self, "endpoint": ep}) for ep in endpoints
            ]
            return Application(routes, log_function=lambda handler: None)

        sock, self.port = bind_unused_port()
        self._server = HTTPServer(app("authorize"))
        self._server.add_sockets([sock])
        api_sock, self.api_port = bind_unused_port()
        self._api_server = HTTPServer(app("token", "userinfo"), ssl_options=self.tls_context())
        self._api_server.add_sockets([api_sock])
        return self

    async def aclose(self) -> None:
        await super().aclose()
        if self._api_server is not None:
            self._api_server.stop()
            await self._api_server.close_all_connections()
            self._api_server = None

    def url(self, endpoint: str) -> str:
        if endpoint == "authorize":
            return self.base_url + self.paths[endpoint]
        return f"https://127.0.0.1:{self.api_port}{self.paths[endpoint]}"

    def section(self, *, down: bool = False, **overrides: Any) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "authorize_url": self.url("authorize"),
            "token_url": self.url("token"),
            "userinfo_url": self.url("userinfo"),
            "tls_client_cert": str(self.client_cert.cert),
            "tls_client_key": str(self.client_cert.key),
            "tls_ca_file": str(self.ca.ca_file),
            **overrides,
        }

    # ---- protocol -------------------------------------------------------------------------

    def check_authorize_extras(self, args: dict[str, str]) -> str | None:
        if args.get("client_type") != "PRIVATE":
            return "client_type must be PRIVATE"
        scopes = (args.get("scope") or "").split(" ")
        if not scopes or scopes[0] != "openid":
            return "scope must start with openid"
        if set(scopes) - self.registered_scopes:
            return "a scope is not registered for this client"
        if len(args.get("state") or "") > 96:
            return "state is longer than 96 characters"
        if not args.get("nonce"):
            return "nonce is required"
        return None

    def authorize(self, args: dict[str, str]) -> Reply:
        reply = super().authorize(args)
        code = _code_of(reply)
        if code is not None:
            self.nonces[id(self.codes[code])] = args["nonce"]
        return reply

    def token(self, req: Incoming) -> Reply:
        if not _HEX32.fullmatch(req.headers.get("rquid", "")):
            raise ProtocolError("invalid_request", "rquid header of 32 hex digits is required")
        if "application/json" not in req.headers.get("Accept", ""):
            raise ProtocolError("invalid_request", "accept: application/json is required")
        return super().token(req)

    def authenticate_client(self, params: dict[str, str], headers: Any) -> str:
        if headers.get("Authorization"):
            raise ProtocolError("invalid_request", "client credentials go in the form")
        if (params.get("client_id"), params.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            raise ProtocolError("invalid_client", "client authentication failed", 401)
        return self.client_id

    def token_answer(self, grant: Grant, access_token: str) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": "https://online.sberbank.ru/CSAFront/index.do",
            "sub": self.users[grant.user]["sub"],
            "aud": self.client_id,
            "nonce": self.nonces.pop(id(grant), ""),
            "iat": now,
            "exp": now + 60,
        }
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 60,
            "scope": f"{grant.scope} https://api.sberbank.ru/sberid",
            "id_token": jwt.encode(claims, self.key, algorithm="RS256"),
        }

    def userinfo(self, req: Incoming) -> Reply:
        if req.method != "GET":
            raise ProtocolError("invalid_request", "user info is a GET", 405)
        if not _HEX32.fullmatch(req.headers.get("x-introspect-rquid", "")):
            raise ProtocolError("invalid_request", "x-introspect-rquid of 32 hex digits required")
        authorization = req.headers.get("Authorization", "")
        if not authorization.startswith("Bearer "):
            raise ProtocolError("invalid_token", "a bearer token is required", 401)
        issued = self.issued(authorization[7:])
        granted = set(issued.scope.split())
        user = self.users[issued.user]
        answer = {"sub": user["sub"]}
        if "name" in granted:
            answer.update({k: user[k] for k in ("family_name", "given_name", "middle_name")})
        if "email" in granted:
            answer["email"] = user["email"]
        if "mobile" in granted:
            answer["phone_number"] = user["phone_number"]
        return Reply(200, answer)


class Fakes2026:
    """The three fakes started together (Sber's certificates in `folder`), for tests that
    configure every provider (the fuzzer)."""

    def __init__(self, folder: Path) -> None:
        self.telegram = FakeTelegram()
        self.tid = FakeTID()
        self.sber = FakeSber(folder)

    def start(self) -> Fakes2026:
        for fake in (self.telegram, self.tid, self.sber):
            fake.start()
        return self

    async def aclose(self) -> None:
        for fake in (self.telegram, self.tid, self.sber):
            await fake.aclose()

    def sections(self) -> dict[str, Any]:
        return {
            "telegram": self.telegram.section(),
            "tid": self.tid.section(),
            "sber": self.sber.section(),
        }
