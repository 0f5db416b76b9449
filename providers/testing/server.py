"""A strict fake OAuth 2.0 / OpenID Connect server on 127.0.0.1 (see providers.testing).

The server refuses what a careful provider refuses: an unknown client or redirect_uri, a
missing state, PKCE other than S256, a reused code, a second client authentication method,
a token in a query string. `mint_token(client_id="another-app")` makes another client's
token; `mode` makes it misbehave (MODES); `rotate_keys()` changes its signing key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from tornado.httpserver import HTTPServer
from tornado.httputil import url_concat
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

MODES = (
    "normal",
    "server_error",  # every endpoint answers HTTP 500
    "no_id_token",  # token answers without an id_token
    "forged_id_token",  # the id_token is signed by a key not in the JWKS
    "wrong_audience",  # the id_token is for another client
    "wrong_nonce",  # the id_token carries another nonce
)
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


class Refusal(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    user: str
    scope: str
    challenge: str
    nonce: str | None


class FakeOAuthServer:
    """One provider with one registered client. `oidc=False`: plain OAuth 2.0 (no discovery,
    no id_token); user info then names the token's client_id when `userinfo_client_id`."""

    def __init__(
        self,
        *,
        oidc: bool = True,
        client_id: str = "test-client",
        client_secret: str | None = None,
        auth_method: str = "client_secret_basic",
        introspection: bool = True,
        userinfo_client_id: bool = False,
    ) -> None:
        if auth_method not in AUTH_METHODS:
            raise ValueError(f"auth_method must be one of {', '.join(AUTH_METHODS)}")
        self.oidc = oidc
        self.client_id = client_id
        self.client_secret = (
            "" if auth_method == "none" else (client_secret or secrets.token_hex(16))
        )
        self.auth_method = auth_method
        self.offers_introspection = introspection
        self.userinfo_client_id = userinfo_client_id
        self.redirect_uris: set[str] | None = None  # None: any redirect_uri is accepted
        self.users: dict[str, dict[str, Any]] = {
            "default": {
                "sub": "248289761001",
                "email": "ivan@example.org",
                "email_verified": True,
                "given_name": "Ivan",
                "family_name": "Petrov",
            }
        }
        self.mode = "normal"
        self.calls: Counter[str] = Counter()
        self.codes: dict[str, Grant] = {}
        self.tokens: dict[str, tuple[str, str]] = {}  # token → (client_id, user)
        self.port: int | None = None
        self._server: HTTPServer | None = None
        self.rotate_keys()

    # ---- life cycle and controls ------------------------------------------------------

    def start(self) -> FakeOAuthServer:
        """Listen on 127.0.0.1 on a free port, on the running (or current) IOLoop."""
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        routes = [
            (path, _Handler, {"server": self, "endpoint": name}) for name, path in PATHS.items()
        ]
        self._server = HTTPServer(Application(routes, log_function=lambda handler: None))
        self._server.add_sockets(sockets)
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
            self._server = None

    @property
    def issuer(self) -> str:
        if self.port is None:
            raise RuntimeError("the fake server is not started")
        return f"http://127.0.0.1:{self.port}"

    def url(self, endpoint: str) -> str:
        return self.issuer + PATHS[endpoint]

    def section(self, **overrides: Any) -> dict[str, Any]:
        """A vhod `providers.<name>` section for this server (type oidc or oauth2)."""
        section: dict[str, Any] = {
            "type": "oidc" if self.oidc else "oauth2",
            "client_id": self.client_id,
            "client_auth": self.auth_method,
        }
        if self.client_secret:
            section["client_secret"] = self.client_secret
        if self.oidc:
            section["issuer"] = self.issuer
        else:
            section.update(
                authorize_url=self.url("authorize"),
                token_url=self.url("token"),
                userinfo_url=self.url("userinfo"),
            )
            if self.offers_introspection:
                section["introspection_url"] = self.url("introspection")
        section.update(overrides)
        return section

    def plugin_section(self, **overrides: Any) -> dict[str, Any]:
        """A section for a provider plugin's class: the common keys only, its URLs here."""
        section: dict[str, Any] = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "authorize_url": self.url("authorize"),
            "token_url": self.url("token"),
            "userinfo_url": self.url("userinfo"),
        }
        section.update(overrides)
        return section

    def rotate_keys(self) -> None:
        """A new signing key with a new kid; the JWKS then holds only the new one."""
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(8)

    def mint_token(self, user: str = "default", *, client_id: str | None = None) -> str:
        """An access token as if a sign-in had happened; another client_id: another app's."""
        token = secrets.token_urlsafe(32)
        self.tokens[token] = (client_id or self.client_id, user)
        return token

    # ---- endpoints ----------------------------------------------------------------------

    def authorize(self, args: dict[str, str]) -> tuple[int, Any, str | None]:
        if args.get("client_id") != self.client_id:
            return 400, "unknown client_id", None  # never redirect for an unknown client
        redirect_uri = args.get("redirect_uri", "")
        if not redirect_uri or (
            self.redirect_uris is not None and redirect_uri not in self.redirect_uris
        ):
            return 400, "redirect_uri is missing or not registered", None
        state = args.get("state")

        def back(params: dict[str, str]) -> tuple[int, Any, str | None]:
            if state:
                params["state"] = state
            if self.oidc:
                params["iss"] = self.issuer  # RFC 9207
            return 302, None, url_concat(redirect_uri, params)

        if args.get("response_type") != "code":
            return back({"error": "unsupported_response_type"})
        if not state:
            return back({"error": "invalid_request", "error_description": "state is required"})
        if args.get("code_challenge_method") != "S256" or not args.get("code_challenge"):
            return back({"error": "invalid_request", "error_description": "PKCE S256 required"})
        scope = args.get("scope", "")
        if self.oidc and "openid" not in scope.split():
            return back({"error": "invalid_scope", "error_description": "openid is required"})
        user = args.get("user", "default")
        if args.get("deny") or user not in self.users:
            return back({"error": "access_denied"})
        code = secrets.token_urlsafe(32)
        self.codes[code] = Grant(
            self.client_id, redirect_uri, user, scope, args["code_challenge"], args.get("nonce")
        )
        return back({"code": code})

    def token(self, form: dict[str, str], headers: Any) -> dict[str, Any]:
        client_id = self._authenticate(form, headers)
        if form.get("grant_type") != "authorization_code":
            raise Refusal(400, "unsupported_grant_type", "grant_type must be authorization_code")
        grant = self.codes.pop(form.get("code", ""), None)  # single use
        if grant is None or grant.client_id != client_id:
            raise Refusal(400, "invalid_grant", "code is invalid, used or another client's")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise Refusal(400, "invalid_grant", "redirect_uri does not match")
        verifier = form.get("code_verifier", "")
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if not secrets.compare_digest(computed.rstrip(b"=").decode(), grant.challenge):
            raise Refusal(400, "invalid_grant", "code_verifier does not match")
        access = self.mint_token(grant.user, client_id=client_id)
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 3600,
        }
        if self.oidc and self.mode != "no_id_token":
            answer["id_token"] = self.id_token(grant)
        return answer

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": self.users[grant.user]["sub"],
            "aud": "another-app" if self.mode == "wrong_audience" else grant.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": "another-nonce" if self.mode == "wrong_nonce" else grant.nonce,
        }
        key = self.key
        if self.mode == "forged_id_token":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})

    def userinfo(self, query: dict[str, str], headers: Any) -> dict[str, Any]:
        authorization = headers.get("Authorization", "")
        if "access_token" in query or not authorization.startswith("Bearer "):
            raise Refusal(401, "invalid_request", "send the token in Authorization: Bearer")
        issued = self.tokens.get(authorization[7:])
        if issued is None:
            raise Refusal(401, "invalid_token", "the access token is invalid or expired")
        claims = dict(self.users[issued[1]])
        if self.userinfo_client_id:
            claims["client_id"] = issued[0]
        return claims

    def introspection(self, form: dict[str, str], headers: Any) -> dict[str, Any]:
        if not self.offers_introspection:
            raise Refusal(404, "not_found", "no introspection here")
        self._authenticate(form, headers)
        issued = self.tokens.get(form.get("token", ""))
        if issued is None:
            return {"active": False}
        return {"active": True, "client_id": issued[0], "sub": self.users[issued[1]]["sub"]}

    def discovery(self) -> dict[str, Any]:
        document = {
            "issuer": self.issuer,
            "authorization_endpoint": self.url("authorize"),
            "token_endpoint": self.url("token"),
            "userinfo_endpoint": self.url("userinfo"),
            "jwks_uri": self.url("jwks"),
            "token_endpoint_auth_methods_supported": [self.auth_method],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        if self.offers_introspection:
            document["introspection_endpoint"] = self.url("introspection")
        return document

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def _authenticate(self, form: dict[str, str], headers: Any) -> str:
        basic = headers.get("Authorization", "")
        used = [
            m
            for m, on in (
                ("client_secret_basic", basic.startswith("Basic ")),
                ("client_secret_post", "client_secret" in form),
            )
            if on
        ]
        if len(used) > 1:  # RFC 6749 §2.3: one method only
            raise Refusal(400, "invalid_request", "more than one client authentication")
        method = used[0] if used else "none"
        if method != self.auth_method:
            raise Refusal(
                401, "invalid_client", f"this client authenticates with {self.auth_method}"
            )
        if method == "client_secret_basic":
            try:
                raw_id, raw_secret = (
                    base64.b64decode(basic[6:], validate=True).decode().split(":", 1)
                )
            except ValueError:
                raise Refusal(401, "invalid_client", "malformed Basic credentials") from None
            client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)  # RFC 6749 §2.3.1
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if client_id != self.client_id or not secrets.compare_digest(secret, self.client_secret):
            raise Refusal(401, "invalid_client", "client authentication failed")
        return client_id


PATHS = {
    "authorize": "/authorize",
    "token": "/token",
    "userinfo": "/userinfo",
    "introspection": "/introspect",
    "discovery": "/.well-known/openid-configuration",
    "jwks": "/jwks",
}


class _Handler(RequestHandler):
    def initialize(self, server: FakeOAuthServer, endpoint: str) -> None:
        self.server, self.endpoint = server, endpoint

    def get(self) -> None:
        self._serve()

    def post(self) -> None:
        self._serve()

    def _serve(self) -> None:
        server, endpoint = self.server, self.endpoint
        server.calls[endpoint] += 1
        if server.mode == "server_error":
            self.set_status(500)
            self.finish("Internal Server Error")
            return
        query = dict(parse_qsl(self.request.query, keep_blank_values=True))
        form: dict[str, str] = {}
        if self.request.headers.get("Content-Type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            form = dict(parse_qsl(self.request.body.decode(), keep_blank_values=True))
        headers = self.request.headers
        try:
            if endpoint in ("discovery", "jwks") and not server.oidc:
                raise Refusal(404, "not_found", "plain OAuth 2.0: nothing published")
            if endpoint == "authorize":
                status, body, location = server.authorize(query)
                self.set_status(status)
                if location:
                    self.set_header("Location", location)
                self.finish(body or "")
                return
            if endpoint in ("token", "introspection") and self.request.method != "POST":
                raise Refusal(405, "invalid_request", "POST only")
            answer = {
                "token": lambda: server.token(form, headers),
                "userinfo": lambda: server.userinfo(query, headers),
                "introspection": lambda: server.introspection(form, headers),
                "discovery": server.discovery,
                "jwks": server.jwks,
            }[endpoint]()
        except Refusal as refusal:
            self.set_status(refusal.status)
            if refusal.status == 401 and endpoint == "userinfo":
                self.set_header("WWW-Authenticate", f'Bearer error="{refusal.error}"')
            answer = {"error": refusal.error, "error_description": refusal.description}
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(answer))
