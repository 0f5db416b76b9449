"""The OAuth 2.0 client side every provider shares: the template method that owns state,
PKCE, client authentication and what may go out, and the hooks a provider module overrides.

The HTTP call and its judging live in providers.transport, settings in providers.settings,
the Profile and mapping helpers in providers.profile; all are re-exported here, so a
provider module (or plugin) imports from providers.base only.
"""

from __future__ import annotations

import hmac
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from tornado.httpclient import AsyncHTTPClient
from tornado.httputil import url_concat

from core.domain.errors import ApiError
from core.domain.pkce import code_challenge, new_code_verifier, new_state
from providers.binding import (
    CLIENT_AUTH_METHODS,
    CLIENT_AUTH_NAMES,
    TOKEN_CHECKS,
    ClientAuth,
    add_client_auth,
    owners_claims,
)
from providers.profile import (
    Profile,
    ProviderTokens,
    e164_or_none,
    in_own_mailbox,
    subject_of,
    text_or_none,
)
from providers.settings import ProviderSettings, Setting, load_settings
from providers.transport import (
    NO_CHANNEL,
    Channel,
    ClientAuthRefused,
    Endpoint,
    ProviderRequest,
    is_wire_value,
    seconds_or_none,
    send,
    unavailable,
)

# new_state, new_code_verifier, code_challenge (core.domain.pkce) are re-exported for plugins.
__all__ = [
    "CLIENT_AUTH_METHODS",
    "TOKEN_CHECKS",
    "ClientAuth",
    "OAuthProvider",
    "Profile",
    "ProviderRequest",
    "ProviderSettings",
    "ProviderTokens",
    "Setting",
    "code_challenge",
    "e164_or_none",
    "in_own_mailbox",
    "new_code_verifier",
    "new_state",
    "subject_of",
    "text_or_none",
]


_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


_TEMPLATE_METHODS = (
    "load_settings",
    "configured",
    "redirect_uri",
    "authorization_url",
    "exchange",
    "fetch_profile",
    "token_belongs_to_us",  # removed: a provider declares `token_check` instead
)


class OAuthProvider(ABC):
    """An OAuth 2.0 authorization-code client (RFC 6749 §4.1) with PKCE (RFC 7636).

    A provider module declares the class attributes below, overrides the small `build_*`
    hooks only where its request shape differs, and implements `to_profile`. The methods
    `authorization_url`, `exchange` and `fetch_profile` are the template: they own state,
    PKCE, client authentication, timeouts and error mapping, and a subclass that defines
    any of them is refused when the class is created.
    """

    name: ClassVar[str]  # config key: providers.<name>; lower-case
    prefix: ClassVar[str]  # URL prefix: /<prefix>/link ...
    title: ClassVar[str]  # human name, used in error descriptions
    default_authorize_url: ClassVar[str] = ""
    default_token_url: ClassVar[str] = ""
    default_userinfo_url: ClassVar[str] = ""
    default_scope: ClassVar[str] = ""
    pkce: ClassVar[bool] = True  # send an S256 challenge and the verifier (RFC 7636)
    # The next four may be set per instance by a provider whose protocol depends on its
    # settings (Mail.ru's legacy mode, a configured OpenID Connect provider).
    client_auth: ClientAuth = "basic"  # RFC 6749 §2.3.1; "none": public client
    callback_params: tuple[str, ...] = ()  # required from the callback into exchange
    # Also passed on to the front end from the callback when present (never anything else).
    forwarded_params: tuple[str, ...] = ()
    token_check: str = "userinfo_client_id"  # one of TOKEN_CHECKS
    profile_in_id_token: bool = False  # no user info: the exchange keeps the id_token's claims
    client_id_in_form: bool = False  # also with client_secret_basic (Telegram)
    channel: Channel = NO_CHANNEL  # mutual TLS, own CAs and headers of back-channel calls
    extra_settings: ClassVar[dict[str, Setting]] = {}  # its own keys beyond the common ones
    setting_notes: ClassVar[dict[str, str]] = {}  # common keys' help for it, in the docs

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = [m for m in _TEMPLATE_METHODS if m in vars(cls)]
        if overridden:
            raise TypeError(
                f"{cls.__qualname__} overrides {', '.join(overridden)}: the base class owns "
                "the protocol; override a build_* hook or to_profile instead"
            )

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        public_url: str,
        http_client: AsyncHTTPClient | None = None,
        connect_timeout: float = 5,
        request_timeout: float = 10,
    ) -> None:
        self.settings = settings
        self.public_url = public_url.rstrip("/")
        self._http_client = http_client
        self.connect_timeout = float(connect_timeout)
        self.request_timeout = float(request_timeout)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} configured={self.configured}>"

    # ---- settings ---------------------------------------------------------------------

    @classmethod
    def load_settings(cls, section: Mapping[str, Any] | None = None) -> ProviderSettings:
        """Build settings from a `providers.<name>` section over this provider's defaults.

        Raises ValueError naming the key (`providers.vk.client_idd: unknown key`) for an
        unknown key, a wrong type or an unusable URL."""
        defaults = {
            "scope": cls.default_scope,
            "authorize_url": cls.default_authorize_url,
            "token_url": cls.default_token_url,
            "userinfo_url": cls.default_userinfo_url,
        }
        return load_settings(
            cls.name, defaults, section, extra=cls.extra_settings, endpoints=cls.defaults_for
        )

    @classmethod
    def defaults_for(cls, options: Mapping[str, Any]) -> dict[str, str]:
        """Defaults (URLs, scope) that follow the provider's own options, e.g. a configured
        host; explicit keys in the section still win. Default: the class's default_*."""
        return {}

    # ---- what the base owns -------------------------------------------------------------

    @property
    def configured(self) -> bool:
        """A client id is set, and a secret too unless the provider takes none (VK ID)."""
        if not self.settings.client_id:
            return False
        return self.client_auth == "none" or bool(self.settings.client_secret)

    @property
    def redirect_uri(self) -> str:
        """From config only, never from a request (OA3)."""
        return self.settings.redirect_uri or f"{self.public_url}/{self.prefix}/callback"

    def authorization_url(self, state: str, code_challenge: str | None) -> str:
        """The provider's consent page URL (RFC 6749 §4.1.1) for one fresh state.

        `code_challenge` is required when `pkce` is set and ignored otherwise; the
        verifier itself never goes into this URL (OA2)."""
        self._require_configured()
        if not state:
            raise ValueError("authorization_url needs a state")
        if self.pkce:
            if not code_challenge or not _CHALLENGE.fullmatch(code_challenge):
                raise ValueError(f"{self.title} needs an S256 code_challenge (RFC 7636)")
        else:
            code_challenge = None
        params = self.build_authorize_params(state, code_challenge)
        return url_concat(self.settings.authorize_url, params)

    async def exchange(
        self,
        code: str,
        *,
        code_verifier: str | None,
        state: str,
        extra: Mapping[str, str],
    ) -> ProviderTokens:
        """Trade an authorization code for the provider's tokens (RFC 6749 §4.1.3).

        `extra` holds what the callback / get-token request carried; only the names in
        `callback_params` are read from it, so a request cannot add or replace anything
        else (OA3). Raises ApiError 400 `invalid_request` / `invalid_grant`, 502
        `provider_unavailable`, 503 `provider_not_configured`."""
        self._require_configured()
        # Checked here, before any hook runs, so that no provider module can send a value
        # that is not visible ASCII (it would break the request or be read differently).
        if not is_wire_value(code):
            raise ApiError(400, "invalid_request", "The code parameter is missing or malformed.")
        if self.pkce and not code_verifier:
            raise ValueError(f"{self.title} needs the code_verifier kept with the state")
        picked: dict[str, str] = {}
        for name in self.callback_params:
            value = extra.get(name)
            if not value:
                raise ApiError(400, "invalid_request", f"The {name} parameter is required.")
            if not is_wire_value(value):
                raise ApiError(400, "invalid_request", f"The {name} parameter is malformed.")
            picked[name] = value
        params = self.build_token_params(
            code,
            code_verifier=code_verifier if self.pkce else None,
            state=state,
            extra=picked,
        )
        headers: dict[str, str] = {}
        self._add_client_auth(params, headers)
        call = ProviderRequest("POST", self.settings.token_url, form=params, headers=headers)
        try:
            body = await self._call("token", call)
        except ClientAuthRefused as exc:
            # Our configuration, not the user's code: say which authentication was sent.
            method = CLIENT_AUTH_NAMES[self.client_auth]
            raise self._unavailable(
                f"refused our client authentication ({method}): check client_id, "
                f"client_secret and client_auth of providers.{self.name} ({exc.text})"
            ) from exc
        returned_state = body.get("state")
        if returned_state is not None and not (
            isinstance(returned_state, str)
            and hmac.compare_digest(returned_state.encode(), state.encode())
        ):
            raise self._unavailable("returned another state than the one sent")
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise self._unavailable("answered without an access_token")
        claims = await self.check_token_answer(body, code_verifier=code_verifier)
        return ProviderTokens(
            access_token=access_token,
            refresh_token=text_or_none(body.get("refresh_token")),
            expires_in=seconds_or_none(body.get("expires_in")),
            raw=body,
            profile_claims=claims if self.profile_in_id_token else None,
        )

    async def fetch_profile(
        self,
        access_token: str,
        *,
        exchanged: bool = False,
        claims: Mapping[str, Any] | None = None,
    ) -> Profile:
        """Ask the provider who owns `access_token` and map the answer with `to_profile`.

        `exchanged`: our own code exchange obtained this token (the flow remembers them), so
        it is ours by construction (with `claims`, what it kept of the id_token); any other
        token needs the proof `token_check` names (providers.binding.owners_claims). Raises
        ApiError 401 `invalid_provider_token` for a rejected, expired or foreign token, 502
        `provider_unavailable` for anything else."""
        self._require_configured()
        body = await owners_claims(self, access_token, exchanged=exchanged, claims=claims)
        try:
            profile = self.to_profile(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise self._unavailable("answered without a usable user id") from exc
        if profile.provider != self.name or not profile.subject:
            raise self._unavailable("answered without a usable user id")
        return profile

    # ---- hooks ----------------------------------------------------------------------------

    def build_authorize_params(self, state: str, code_challenge: str | None) -> dict[str, str]:
        """Query of the authorization URL. Called by `authorization_url`.

        RFC 6749 §4.1.1 plus RFC 7636 §4.3; override to add a provider's own options, but
        keep `redirect_uri` as it is (OA3)."""
        params = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.redirect_uri,
            "state": state,
        }
        if self.settings.scope:
            params["scope"] = self.settings.scope
        if code_challenge:
            params["code_challenge"] = code_challenge
            params["code_challenge_method"] = "S256"
        return params

    def build_token_params(
        self,
        code: str,
        *,
        code_verifier: str | None,
        state: str,
        extra: dict[str, str],
    ) -> dict[str, str]:
        """Form of the token request (RFC 6749 §4.1.3, RFC 7636 §4.5). Called by `exchange`.

        `extra` holds the validated `callback_params`. Client authentication is added by
        the base afterwards, from `client_auth`."""
        params = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
        }
        if code_verifier:
            params["code_verifier"] = code_verifier
        params.update(extra)
        return params

    def build_userinfo_request(self, access_token: str) -> ProviderRequest:
        """The user-info call for `access_token`. Called by `fetch_profile`.

        Default: GET `userinfo_url` with `Authorization: Bearer` (RFC 6750 §2.1)."""
        return ProviderRequest(
            "GET", self.settings.userinfo_url, headers={"Authorization": f"Bearer {access_token}"}
        )

    def check_callback(self, params: Mapping[str, str]) -> None:
        """Judge the callback's query first (RFC 9207 `iss`); raise ApiError 400 to refuse."""
        return None

    async def ready(self) -> None:
        """Called by the flow before every use: read what the provider publishes (OpenID
        Connect discovery), else raise ApiError 503 `provider_unavailable`."""
        return None

    async def check_token_answer(
        self, body: dict[str, Any], *, code_verifier: str | None
    ) -> dict[str, Any] | None:
        """Judge the token answer beyond the access token (an OpenID Connect id_token).
        Called by `exchange`; raise ApiError to refuse. Returns the id_token's claims that
        `to_profile` maps when `profile_in_id_token` is set. Default: nothing to check."""
        return None

    def introspection_url(self) -> str:
        """Where `token_check = "introspection"` asks (RFC 7662). Called by `introspect`."""
        raise NotImplementedError(f"{self.title} declares introspection but names no URL")

    @abstractmethod
    def to_profile(self, userinfo: dict[str, Any]) -> Profile:
        """Map the provider's user info to a Profile. Called by `fetch_profile`.

        Raise KeyError / TypeError / ValueError when the answer has no usable user id;
        the base turns that into 502 `provider_unavailable`."""

    # ---- internals --------------------------------------------------------------------------

    @property
    def http_client(self) -> AsyncHTTPClient:
        # AsyncHTTPClient() is one shared instance per IOLoop, so asking late is cheap and
        # binds to the loop that runs the request.
        return self._http_client or AsyncHTTPClient()

    def _require_configured(self) -> None:
        if not self.configured:
            raise ApiError(
                503, "provider_not_configured", f"{self.title} sign-in is not configured here."
            )

    def _add_client_auth(self, params: dict[str, str], headers: dict[str, str]) -> None:
        settings = self.settings
        add_client_auth(
            self.client_auth, settings.client_id, settings.client_secret, params, headers
        )
        if self.client_id_in_form:  # identifies, not authenticates (RFC 6749 §3.2.1)
            params["client_id"] = settings.client_id

    async def _call(self, endpoint: Endpoint, call: ProviderRequest) -> dict[str, Any]:
        return await send(
            self.title,
            endpoint,
            call,
            http_client=self.http_client,
            connect_timeout=self.connect_timeout,
            request_timeout=self.request_timeout,
            channel=self.channel,
        )

    def _unavailable(self, reason: str) -> ApiError:
        return unavailable(self.title, reason)
