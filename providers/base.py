"""The OAuth 2.0 client side every provider shares: state, PKCE, code exchange, user info."""

from __future__ import annotations

import base64
import dataclasses
import hmac
import ipaddress
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import quote_plus, urlencode, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.httputil import url_concat

from core.errors import ApiError
from core.pkce import code_challenge, new_code_verifier, new_state

# new_state, new_code_verifier and code_challenge live in core.pkce (the flow uses them too);
# they are re-exported here for provider code and plugins.
__all__ = [
    "CLIENT_AUTH_METHODS",
    "OAuthProvider",
    "Profile",
    "ProviderRequest",
    "ProviderSettings",
    "ProviderTokens",
    "code_challenge",
    "e164_or_none",
    "new_code_verifier",
    "new_state",
    "subject_of",
    "text_or_none",
]


ClientAuth = Literal["basic", "body", "none"]
CLIENT_AUTH_METHODS: tuple[str, ...] = ("basic", "body", "none")
Endpoint = Literal["token", "userinfo"]

_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")
_PHONE = re.compile(r"\+?[1-9][0-9]{6,14}")
_PHONE_PUNCTUATION = re.compile(r"[\s()\-.]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# Error codes that say "try later" rather than "your code or token is bad" (RFC 6749 §4.1.2.1).
_PROVIDER_SIDE_ERRORS = frozenset({"server_error", "temporarily_unavailable", "slow_down"})
# RFC 6749 §5.2 (token: 400, 401) and RFC 6750 §3.1 (resource: 400, 401, 403); their bodies
# may be empty, so the status alone is a refusal there.
_REFUSAL_STATUSES: dict[str, tuple[int, ...]] = {"token": (400, 401), "userinfo": (400, 401, 403)}
_MAX_CODE_LENGTH = 4096
_MAX_ERROR_TEXT = 200


@dataclass(frozen=True)
class Profile:
    """A provider's user, mapped by `OAuthProvider.to_profile`. `subject` is the stable id."""

    provider: str
    subject: str
    email: str | None = None
    phone: str | None = None  # E.164 with the leading "+"
    first_name: str | None = None
    last_name: str | None = None
    avatar: str | None = None
    # True only where the provider says so for this address; none of the built-ins does (OA6).
    email_verified: bool = False


@dataclass(frozen=True)
class ProviderTokens:
    """The provider's answer to a code exchange. Tokens are kept out of `repr` (and logs)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_in: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ProviderSettings:
    """One `providers.<name>` config section; every provider accepts exactly these keys."""

    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    redirect_uri: str | None = None  # None: {public_url}/{prefix}/callback
    frontend_redirect: str | None = None
    scope: str = ""
    authorize_url: str = ""
    token_url: str = ""
    userinfo_url: str = ""


@dataclass
class ProviderRequest:
    """An HTTP call to a provider as a hook describes it; the base adds timeouts and TLS."""

    method: Literal["GET", "POST"]
    url: str
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)


_TEMPLATE_METHODS = (
    "load_settings",
    "configured",
    "redirect_uri",
    "authorization_url",
    "exchange",
    "fetch_profile",
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
    client_auth: ClassVar[ClientAuth] = "basic"  # RFC 6749 §2.3.1; "none": public client
    callback_params: ClassVar[tuple[str, ...]] = ()  # required from the callback into exchange

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
        values: dict[str, Any] = {
            "scope": cls.default_scope,
            "authorize_url": cls.default_authorize_url,
            "token_url": cls.default_token_url,
            "userinfo_url": cls.default_userinfo_url,
        }
        fields = {f.name: f for f in dataclasses.fields(ProviderSettings)}
        for key, value in (section or {}).items():
            path = f"providers.{cls.name}.{key}"
            if key not in fields:
                raise ValueError(f"{path}: unknown key")
            optional = key in ("redirect_uri", "frontend_redirect")
            if value is None and optional:
                values[key] = None
                continue
            if not isinstance(value, str):
                kind = "str or null" if optional else "str"
                numeric = isinstance(value, int | float) and not isinstance(value, bool)
                hint = " (quote numeric ids in YAML)" if numeric else ""
                raise ValueError(f"{path}: expected {kind}, got {type(value).__name__}{hint}")
            values[key] = (value.strip() or None) if optional else value.strip()
        for key in ("authorize_url", "token_url", "userinfo_url"):
            _check_endpoint(f"providers.{cls.name}.{key}", values[key])
        if values.get("redirect_uri"):
            _check_absolute_url(f"providers.{cls.name}.redirect_uri", values["redirect_uri"])
        front = values.get("frontend_redirect")
        if front and not (front.startswith("/") and not front.startswith("//")):
            _check_absolute_url(f"providers.{cls.name}.frontend_redirect", front)
        return ProviderSettings(**values)

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
        if not isinstance(code, str) or not code or len(code) > _MAX_CODE_LENGTH:
            raise ApiError(400, "invalid_request", "The code parameter is missing or malformed.")
        if self.pkce and not code_verifier:
            raise ValueError(f"{self.title} needs the code_verifier kept with the state")
        picked: dict[str, str] = {}
        for name in self.callback_params:
            value = extra.get(name)
            if not isinstance(value, str) or not value or len(value) > _MAX_CODE_LENGTH:
                raise ApiError(400, "invalid_request", f"The {name} parameter is required.")
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
        body = await self._call("token", call)
        returned_state = body.get("state")
        if returned_state is not None and not (
            isinstance(returned_state, str)
            and hmac.compare_digest(returned_state.encode(), state.encode())
        ):
            raise self._unavailable("returned another state than the one sent")
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise self._unavailable("answered without an access_token")
        return ProviderTokens(
            access_token=access_token,
            refresh_token=text_or_none(body.get("refresh_token")),
            expires_in=_seconds(body.get("expires_in")),
            raw=body,
        )

    async def fetch_profile(self, access_token: str) -> Profile:
        """Ask the provider who owns `access_token` and map the answer with `to_profile`.

        Raises ApiError 401 `invalid_provider_token` for a rejected, expired or foreign
        token (`token_belongs_to_us`), 502 `provider_unavailable` for anything else."""
        self._require_configured()
        if not isinstance(access_token, str) or not access_token:
            raise ApiError(400, "invalid_request", "The access_token parameter is required.")
        body = await self._call("userinfo", self.build_userinfo_request(access_token))
        if not self.token_belongs_to_us(body):
            raise ApiError(
                401,
                "invalid_provider_token",
                f"The {self.title} access token was issued to another application.",
            )
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

    def token_belongs_to_us(self, userinfo: dict[str, Any]) -> bool:
        """Whether the token was issued to our client. Called by `fetch_profile`.

        Default: the user info names the token's `client_id` and it is ours. A provider
        that binds the call itself (VK ID answers an error for a foreign token when given
        our client_id) overrides this to return True."""
        value = userinfo.get("client_id")
        if isinstance(value, bool) or not isinstance(value, str | int):
            return False
        return hmac.compare_digest(str(value).encode(), self.settings.client_id.encode())

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
        client_id, secret = self.settings.client_id, self.settings.client_secret
        if self.client_auth == "basic":
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
            pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
            params.pop("client_id", None)
        elif self.client_auth == "body":
            params["client_id"] = client_id
            params["client_secret"] = secret
        else:  # a public client identifies itself (RFC 6749 §4.1.3) and sends no secret
            params["client_id"] = client_id
            params.pop("client_secret", None)

    async def _call(self, endpoint: Endpoint, call: ProviderRequest) -> dict[str, Any]:
        """Send one request and return its JSON object, or raise the contract's ApiError."""
        url = url_concat(call.url, call.query) if call.query else call.url
        headers = {"Accept": "application/json", "User-Agent": "vhod", **call.headers}
        body = None
        if call.form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urlencode(call.form)
        request = HTTPRequest(
            url,
            method=call.method,
            headers=headers,
            body=body,
            connect_timeout=self.connect_timeout,
            request_timeout=self.request_timeout,
            validate_cert=True,
            follow_redirects=False,  # OA5: talk to the configured host only
        )
        try:
            response: HTTPResponse = await self.http_client.fetch(request, raise_error=False)
        except HTTPClientError as exc:  # 599: the client gave up (timeout)
            reason = "did not answer in time" if exc.code == 599 else f"failed ({exc.code})"
            raise self._unavailable(reason) from exc
        except OSError as exc:  # refused, unreachable, TLS verification failed
            raise self._unavailable(f"cannot be reached ({type(exc).__name__})") from exc
        return self._judge(endpoint, response.code, _parse_json(response.body))

    def _judge(self, endpoint: Endpoint, status: int, body: Any) -> dict[str, Any]:
        error = _error_of(body)
        if status >= 500 or (isinstance(error, str) and error in _PROVIDER_SIDE_ERRORS):
            raise self._unavailable(f"reported {error or f'HTTP {status}'}")
        # An `error` member means a refusal whatever the status (Mail.ru answers it with 200).
        if error is not None or status in _REFUSAL_STATUSES[endpoint]:
            text = _error_text(body) or f"HTTP {status}"
            if endpoint == "userinfo":
                raise ApiError(
                    401, "invalid_provider_token", f"{self.title} rejected the access token: {text}"
                )
            raise ApiError(400, "invalid_grant", f"{self.title} refused the code: {text}")
        if status != 200:
            raise self._unavailable(f"answered HTTP {status}")
        if body is _NOT_JSON:
            raise self._unavailable("answered something that is not JSON")
        if not isinstance(body, dict):
            raise self._unavailable("answered JSON that is not an object")
        return body

    def _unavailable(self, reason: str) -> ApiError:
        # Logged once, by the sign-in flow, as a security event carrying this description.
        return ApiError(502, "provider_unavailable", f"{self.title} {reason}.")


_NOT_JSON: Any = object()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(raw: bytes | None) -> Any:
    """Strict JSON: Python's parser keeps big integers exact (VK's int64 ids)."""
    if not raw:
        return _NOT_JSON
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        return _NOT_JSON


def _error_of(body: Any) -> Any:
    """The `error` member of an error answer, or None (also for an empty `error`)."""
    if isinstance(body, dict) and body.get("error"):
        return body["error"]
    return None


def _error_text(body: Any) -> str:
    """The provider's own words, bounded and without control characters."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):  # VK API style: {"error": {"error_code": 5, "error_msg": ...}}
        body, error = error, error.get("error_code")
    description = next(
        (body[k] for k in ("error_description", "error_msg", "message") if body.get(k)), None
    )
    parts = [str(p) for p in (error, description) if p not in (None, "")]
    text = ": ".join(dict.fromkeys(parts))  # drop a description that repeats the code
    return _CONTROL.sub(" ", text)[:_MAX_ERROR_TEXT]


def _seconds(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _check_absolute_url(path: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        raise ValueError(f"{path}: expected an absolute http(s) URL without a fragment")


def _check_endpoint(path: str, url: str) -> None:
    """Provider endpoints get our secret and tokens: https, except on this machine (tests)."""
    if not url:
        raise ValueError(f"{path}: a URL is required")
    _check_absolute_url(path, url)
    parts = urlsplit(url)
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
        raise ValueError(f"{path}: must be https (plain http only to a loopback address)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def subject_of(value: Any) -> str:
    """A provider user id as a string; an int stays exact, a float is refused (never rounded)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"user id must be a string or an integer, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise ValueError("empty user id")
    return text


def text_or_none(value: Any) -> str | None:
    """A trimmed non-empty string, else None (providers omit, null or blank fields alike)."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def e164_or_none(value: Any) -> str | None:
    """A phone number in E.164 with '+' ("79991234567" → "+79991234567"); masked → None."""
    text = text_or_none(value)
    if text is None:
        return None
    digits = _PHONE_PUNCTUATION.sub("", text)
    if not _PHONE.fullmatch(digits):
        return None
    return digits if digits.startswith("+") else f"+{digits}"
