"""Any OpenID Connect (type: oidc) or plain OAuth 2.0 (type: oauth2) provider by configuration.

A section such as

    providers:
      sber:
        type: oidc
        issuer: https://id.example.ru
        client_id: "..."
        client_secret: "..."
        prefix: sber

gives /sber/link, /sber/callback, /sber/get/token, /sber/registration and /sber/login with no
code. `type: oidc` reads the endpoints from discovery (OIDC Discovery §4, cached), sends PKCE
S256 and a nonce, and checks the id_token of every exchange (OIDC Core §3.1.3.7) against the
provider's JWKS; `type: oauth2` takes explicit URLs and claim paths. The id_token and JWKS
logic lives in providers.oidc_tokens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from core.domain.errors import ApiError
from providers.base import OAuthProvider, Profile, ProviderSettings, Setting, subject_of
from providers.binding import ClientAuth
from providers.oidc_tokens import IdTokenChecker, fetch_document, nonce_for
from providers.profile import e164_or_none, text_or_none
from providers.settings import check_endpoint
from providers.transport import FRESH_ID, Channel

TYPES = ("oidc", "oauth2")
DISCOVERY_PATH = "/.well-known/openid-configuration"
MAX_KEPT_CLAIMS = 8192  # bytes of JSON kept with an exchanged token (profile_from: id_token)
DISCOVERY_TTL_SECONDS = 86_400.0  # re-read daily; a failed re-read keeps the last document
AUTH_METHODS: dict[str, ClientAuth] = {
    "client_secret_basic": "basic",
    "client_secret_post": "body",
    "none": "none",
}
CLAIMS = {  # Profile field → default claim (OIDC Core §5.1)
    "subject": "sub",
    "email": "email",
    "email_verified": "email_verified",
    "phone": "phone_number",
    "phone_verified": "phone_number_verified",
    "first_name": "given_name",
    "last_name": "family_name",
    "avatar": "picture",
}
GENERIC_SETTINGS: dict[str, Setting] = {
    "type": Setting(str, "oidc", "oidc: discovery and id_token; oauth2: explicit URLs", TYPES),
    "issuer": Setting(str, "", "type oidc: the issuer; discovery is read from it"),
    "prefix": Setting(str, "", "URL prefix of the five routes; default: the section's name"),
    "title": Setting(str, "", "the provider's name in error descriptions"),
    "client_auth": Setting(
        str, "client_secret_basic", "client authentication at the token endpoint", (*AUTH_METHODS,)
    ),
    "client_id_in_form": Setting(
        bool,
        False,
        "also send client_id in the token request's form with client_secret_basic "
        "(Telegram's token request lists both)",
    ),
    "token_check": Setting(
        str,
        "",
        "how a token from elsewhere is proven ours: introspection, userinfo_client_id or "
        "exchange_only; default: introspection when the provider offers it, else exchange_only",
        ("", "introspection", "userinfo_client_id", "exchange_only"),
    ),
    "introspection_url": Setting(str, "", "RFC 7662 endpoint (type oidc: from discovery)"),
    "preset": Setting(
        str, "", "a built-in provider (telegram, tid, sber) whose defaults this section takes"
    ),
    "profile_from": Setting(
        str,
        "userinfo",
        "where the user's claims come from: the user-info endpoint, or the id_token of the "
        "exchange (type oidc; a provider without user info, e.g. Telegram)",
        ("userinfo", "id_token"),
    ),
    "id_token_nonce": Setting(
        str,
        "required",
        "required: the id_token must carry the nonce sent; if_present: one it carries must "
        "match (PKCE still binds the code)",
        ("required", "if_present"),
    ),
    "phones_verified": Setting(
        bool,
        False,
        "the provider returns only phone numbers it has verified (Telegram): trusted as "
        "verified without a phone_verified claim",
    ),
    "emails_verified": Setting(
        bool,
        False,
        "the provider returns only email addresses it has verified: trusted as verified "
        "without an email_verified claim",
    ),
    "tls_client_cert": Setting(
        str,
        "",
        "PEM file of the client certificate presented on the provider's back-channel calls "
        "(mutual TLS; Sber ID)",
    ),
    "tls_client_key": Setting(
        str, "", "PEM file of that certificate's private key; empty: it is in tls_client_cert"
    ),
    "tls_ca_file": Setting(
        str,
        "",
        "PEM file of the CAs that vouch for the provider's servers, instead of the system's "
        "(Sber ID: the Russian Ministry of Digital Development's root)",
    ),
    "extra_headers": Setting(
        dict[str, str],
        {},
        "headers added to token, user-info and introspection calls; {uuid_hex} in a value "
        "becomes a fresh random id (32 hex digits) per request",
    ),
    **{
        f"{field}_claim": Setting(str, claim, f"claim path (a.b for nesting) of the {field}")
        for field, claim in CLAIMS.items()
    },
}


class GenericProvider(OAuthProvider):
    """The generic provider; each config section gets a subclass naming it (`provider_class`)."""

    name = "generic"
    prefix = "generic"
    title = "OpenID Connect"
    pkce = True
    extra_settings: ClassVar[dict[str, Setting]] = GENERIC_SETTINGS
    clock: Callable[[], float] = time.monotonic

    def __init__(self, settings: ProviderSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        options = settings.options
        self.kind: str = options["type"]
        self.issuer: str = options["issuer"].rstrip("/") if self.kind == "oidc" else ""
        self.client_auth = AUTH_METHODS[options["client_auth"]]
        self.token_check = options["token_check"] or (
            "introspection" if options["introspection_url"] else "exchange_only"
        )
        self._introspection_url: str = options["introspection_url"]
        self.client_id_in_form: bool = options["client_id_in_form"]
        self.profile_in_id_token = options["profile_from"] == "id_token"
        if self.profile_in_id_token:
            self.token_check = "exchange_only"  # no user info: nothing else can name a user
        self.channel = Channel(
            client_cert=options["tls_client_cert"],
            client_key=options["tls_client_key"],
            ca_file=options["tls_ca_file"],
            headers=options["extra_headers"],
        )
        self._discovered_at: float | None = None
        self._iss_required = False
        self._lock = asyncio.Lock()
        self.id_tokens: IdTokenChecker | None = None

    @classmethod
    def defaults_for(cls, options: Mapping[str, Any]) -> dict[str, str]:
        check_channel(cls.name, options)
        if options["type"] != "oidc":
            if options["profile_from"] == "id_token":
                raise ValueError(f"providers.{cls.name}.profile_from: id_token needs type oidc")
            return {"scope": cls.default_scope}
        issuer = options["issuer"]
        if not issuer:
            raise ValueError(f"providers.{cls.name}.issuer: required for type oidc")
        check_endpoint(f"providers.{cls.name}.issuer", issuer)
        # Stand-ins until discovery has been read (ready()): never used for a request.
        document = issuer.rstrip("/") + DISCOVERY_PATH
        return {
            "scope": cls.default_scope or "openid email profile",
            "authorize_url": document,
            "token_url": document,
            "userinfo_url": document,
        }

    # ---- discovery --------------------------------------------------------------------

    async def ready(self) -> None:
        if self.kind != "oidc" or (
            self._discovered_at is not None
            and self.clock() - self._discovered_at < DISCOVERY_TTL_SECONDS
        ):
            return
        async with self._lock:  # one fetch for many waiting requests
            if self._discovered_at is not None and (
                self.clock() - self._discovered_at < DISCOVERY_TTL_SECONDS
            ):
                return
            try:
                await self._discover()
            except ApiError:
                if self._discovered_at is None:
                    raise
                # A failed daily re-read keeps the document and keys that work.
                self._discovered_at = self.clock()

    async def _discover(self) -> None:
        url = self.issuer + DISCOVERY_PATH
        document = await fetch_document(self, url, "discovery document")
        if document.get("issuer") != self.issuer:  # OIDC Discovery §4.3, exactly
            raise self._not_ready("discovery document names another issuer")
        endpoints: dict[str, str] = {}
        for key, field in (
            ("authorization_endpoint", "authorize_url"),
            ("token_endpoint", "token_url"),
            ("userinfo_endpoint", "userinfo_url"),
            ("jwks_uri", "jwks_uri"),
        ):
            value = document.get(key)
            if field == "userinfo_url" and self.profile_in_id_token:
                continue  # not needed, and Telegram publishes none
            try:
                check_endpoint(key, value if isinstance(value, str) else "")
            except ValueError as exc:
                raise self._not_ready(f"discovery document has no usable {key}") from exc
            assert isinstance(value, str)  # check_endpoint refused anything else
            endpoints[field] = value
        introspection = document.get("introspection_endpoint")
        if isinstance(introspection, str) and not self.settings.options["introspection_url"]:
            try:
                check_endpoint("introspection_endpoint", introspection)
                self._introspection_url = introspection
                if not self.settings.options["token_check"] and not self.profile_in_id_token:
                    self.token_check = "introspection"
            except ValueError:
                pass  # unusable: tokens from elsewhere stay refused
        self._iss_required = document.get("authorization_response_iss_parameter_supported") is True
        algorithms = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        checker = IdTokenChecker(
            self,
            endpoints.pop("jwks_uri"),
            self.issuer,
            algorithms=algorithms,
            nonce_required=self.settings.options["id_token_nonce"] == "required",
        )
        await checker.refresh()  # no keys, no sign-in: 503 until they can be read
        self.id_tokens = checker
        self.settings = dataclasses.replace(
            self.settings,
            authorize_url=endpoints["authorize_url"],
            token_url=endpoints["token_url"],
            userinfo_url=endpoints.get("userinfo_url", self.settings.userinfo_url),
        )
        self._discovered_at = self.clock()

    def _not_ready(self, reason: str) -> ApiError:
        return ApiError(503, "provider_unavailable", f"{self.title} {reason}.")

    # ---- hooks ------------------------------------------------------------------------

    def check_callback(self, params: Mapping[str, str]) -> None:
        # RFC 9207: the authorization response names its issuer; another one is a mix-up.
        iss = params.get("iss")
        if self.kind != "oidc" or (iss is None and not self._iss_required):
            return
        if iss != self.issuer:
            raise ApiError(
                400, "invalid_request", "The sign-in answer does not come from this provider."
            )

    def build_authorize_params(self, state: str, code_challenge: str | None) -> dict[str, str]:
        params = super().build_authorize_params(state, code_challenge)
        if self.kind == "oidc" and code_challenge:
            params["nonce"] = nonce_for(code_challenge)
        return params

    async def check_token_answer(
        self, body: dict[str, Any], *, code_verifier: str | None
    ) -> dict[str, Any] | None:
        if self.kind != "oidc":
            return None
        if self.id_tokens is None or not code_verifier:
            raise self._unavailable("cannot check an id_token before discovery")
        claims = await self.id_tokens.check(body.get("id_token"), code_verifier=code_verifier)
        if not self.profile_in_id_token:
            return None
        # Only what to_profile reads is kept (and stored): no nonce, no other claims.
        wanted = {self.settings.options[f"{field}_claim"].split(".")[0] for field in CLAIMS}
        kept = {key: value for key, value in claims.items() if key in wanted}
        if len(json.dumps(kept)) > MAX_KEPT_CLAIMS:  # stored with the token: bounded
            raise self._unavailable("answered an id_token whose claims are too large")
        return kept

    def introspection_url(self) -> str:
        return self._introspection_url

    def to_profile(self, userinfo: dict[str, Any]) -> Profile:
        options = self.settings.options

        def claim(field: str) -> Any:
            value: Any = userinfo
            for part in options[f"{field}_claim"].split("."):
                value = value.get(part) if isinstance(value, dict) else None
            return value

        email, phone = text_or_none(claim("email")), e164_or_none(claim("phone"))
        return Profile(
            provider=self.name,
            subject=subject_of(claim("subject")),
            email=email,
            phone=phone,
            first_name=text_or_none(claim("first_name")),
            last_name=text_or_none(claim("last_name")),
            avatar=text_or_none(claim("avatar")),
            email_verified=_verified(claim("email_verified"), email, options["emails_verified"]),
            phone_verified=_verified(claim("phone_verified"), phone, options["phones_verified"]),
        )


def _verified(flag: Any, value: str | None, trusted: bool) -> bool:
    """The provider's own flag when it sends one; else the operator's trust in it."""
    if flag is not None:
        return flag is True
    return value is not None and trusted


# RFC 9110 §5.1 field names; the ones vhod sets itself cannot be replaced.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")
_OWN_HEADERS = frozenset({"authorization", "content-type", "content-length", "host", "accept"})
MAX_EXTRA_HEADERS = 16


def _no_password() -> bytes:
    raise ValueError("the private key is encrypted")


def check_channel(name: str, options: Mapping[str, Any]) -> None:
    """The TLS files exist, are readable and fit together; the extra headers are sendable.
    At config check time, so that a missing certificate stops the start, not a sign-in."""
    path = f"providers.{name}"
    cert, key, ca_file = (options[k] for k in ("tls_client_cert", "tls_client_key", "tls_ca_file"))
    for setting, file in (
        ("tls_client_cert", cert),
        ("tls_client_key", key),
        ("tls_ca_file", ca_file),
    ):
        if file and not (os.path.isfile(file) and os.access(file, os.R_OK)):
            raise ValueError(f"{path}.{setting}: {file} is not a readable file")
    if key and not cert:
        raise ValueError(f"{path}.tls_client_key: needs tls_client_cert")
    try:
        if cert:
            # An encrypted key is refused (OpenSSL would prompt for its password on the
            # terminal at every request), as is a key that does not match the certificate.
            ssl.create_default_context().load_cert_chain(cert, key or None, password=_no_password)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ValueError(
            f"{path}.tls_client_cert: not a PEM certificate with its unencrypted private key "
            f"({exc})"
        ) from None
    try:
        if ca_file:
            ssl.create_default_context().load_verify_locations(cafile=ca_file)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"{path}.tls_ca_file: not PEM certificates ({exc})") from None
    headers = options["extra_headers"]
    if len(headers) > MAX_EXTRA_HEADERS:
        raise ValueError(f"{path}.extra_headers: at most {MAX_EXTRA_HEADERS} headers")
    for header, value in headers.items():
        if not _HEADER_NAME.fullmatch(header) or header.lower() in _OWN_HEADERS:
            raise ValueError(f"{path}.extra_headers.{header}: not a header vhod can send")
        if not _HEADER_VALUE.fullmatch(value) or "{" in value.replace(FRESH_ID, ""):
            raise ValueError(
                f"{path}.extra_headers.{header}: printable ASCII, and no placeholder but {FRESH_ID}"
            )


def provider_class(name: str, section: Mapping[str, Any]) -> type[GenericProvider]:
    """The class of one `type: oidc|oauth2` section: its name, prefix and title."""
    prefix, title = section.get("prefix") or name, section.get("title") or name
    for key, value in (("prefix", prefix), ("title", title)):
        if not isinstance(value, str):
            raise ValueError(f"providers.{name}.{key}: expected str, got {type(value).__name__}")
    attributes = {"name": name, "prefix": prefix.strip(), "title": title.strip()}
    return type(f"GenericProvider_{name}", (GenericProvider,), attributes)
