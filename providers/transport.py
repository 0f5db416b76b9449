"""Talking to a provider: the values that may go out, one HTTP call, and how its answer is
judged (RFC 6749 §5.2, RFC 6750 §3.1) into the contract's errors."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.httputil import url_concat

from core.domain.errors import ApiError

Endpoint = Literal["token", "userinfo"]

MAX_WIRE_VALUE = 4096
# RFC 6750 §2.1 b64token: what a bearer token may be, in an Authorization header or a form.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 6749 Appendix A (VSCHAR) without the space: codes, device ids and other callback values.
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# Error codes that say "try later" rather than "your code or token is bad" (RFC 6749 §4.1.2.1).
_PROVIDER_SIDE_ERRORS = frozenset({"server_error", "temporarily_unavailable", "slow_down"})
# RFC 6749 §5.2 (token: 400, 401) and RFC 6750 §3.1 (resource: 400, 401, 403); their bodies
# may be empty, so the status alone is a refusal there.
_REFUSAL_STATUSES: dict[str, tuple[int, ...]] = {"token": (400, 401), "userinfo": (400, 401, 403)}
_MAX_ERROR_TEXT = 200
# In an `extra_headers` value: replaced by a fresh random UUID as 32 hex digits on every
# request (Sber ID's `rquid`, which must differ per call).
FRESH_ID = "{uuid_hex}"


class ClientAuthRefused(ApiError):
    """The token endpoint refused our client authentication (RFC 6749 §5.2 invalid_client):
    a configuration problem, which the caller reports naming the method it sent."""

    def __init__(self, title: str, text: str) -> None:
        super().__init__(502, "provider_unavailable", f"{title} refused the client: {text}.")
        self.text = text


@dataclass
class ProviderRequest:
    """An HTTP call to a provider as a hook describes it; the base adds timeouts and TLS."""

    method: Literal["GET", "POST"]
    url: str
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Channel:
    """What a provider adds to each of its back-channel calls: a client certificate (mutual
    TLS), the CAs that vouch for its server, fixed headers. Empty: plain TLS, no headers."""

    client_cert: str = ""
    client_key: str = ""
    ca_file: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    def tls(self) -> dict[str, str]:
        """HTTPRequest's keyword arguments: client_cert, client_key, ca_certs when set."""
        pairs = (
            ("client_cert", self.client_cert),
            ("client_key", self.client_key),
            ("ca_certs", self.ca_file),
        )
        return {key: value for key, value in pairs if value}

    def fresh_headers(self) -> dict[str, str]:
        """The headers of one request: one new id replaces every FRESH_ID in it."""
        if not self.headers:
            return {}
        fresh = uuid.uuid4().hex
        return {name: value.replace(FRESH_ID, fresh) for name, value in self.headers.items()}


NO_CHANNEL = Channel()


def is_bearer_token(value: object) -> bool:
    """An RFC 6750 b64token of a sane length: the only tokens sent to a provider."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_WIRE_VALUE
        and _B64TOKEN.fullmatch(value) is not None
    )


def is_wire_value(value: object) -> bool:
    """Visible ASCII of a sane length: codes, device ids, states sent to a provider."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_WIRE_VALUE
        and _VISIBLE_ASCII.fullmatch(value) is not None
    )


async def send(
    title: str,
    endpoint: Endpoint,
    call: ProviderRequest,
    *,
    http_client: AsyncHTTPClient,
    connect_timeout: float,
    request_timeout: float,
    channel: Channel = NO_CHANNEL,
) -> dict[str, Any]:
    """Send one request and return its JSON object, or raise the contract's ApiError."""
    url = url_concat(call.url, call.query) if call.query else call.url
    headers = {
        "Accept": "application/json",
        "User-Agent": "vhod",
        **channel.fresh_headers(),
        **call.headers,
    }
    # A header value outside printable ASCII cannot be sent (and a CR/LF would split it):
    # refused here whatever a provider hook built, before anything leaves.
    if not all(_HEADER_VALUE.fullmatch(value) for value in headers.values()):
        raise ApiError(400, "invalid_request", f"A value for {title} is not printable ASCII.")
    body = None
    if call.form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        body = urlencode(call.form)
    request = HTTPRequest(
        url,
        method=call.method,
        headers=headers,
        body=body,
        connect_timeout=connect_timeout,
        request_timeout=request_timeout,
        validate_cert=True,
        follow_redirects=False,  # OA5: talk to the configured host only
        **channel.tls(),  # type: ignore[arg-type]
    )
    try:
        response: HTTPResponse = await http_client.fetch(request, raise_error=False)
    except HTTPClientError as exc:  # 599: the client gave up (timeout)
        reason = "did not answer in time" if exc.code == 599 else f"failed ({exc.code})"
        raise unavailable(title, reason) from exc
    except OSError as exc:  # refused, unreachable, TLS verification failed
        raise unavailable(title, f"cannot be reached ({type(exc).__name__})") from exc
    return judge(title, endpoint, response.code, _parse_json(response.body))


def judge(title: str, endpoint: Endpoint, status: int, body: Any) -> dict[str, Any]:
    """The answer's JSON object, or the refusal / fault it stands for."""
    error = _error_of(body)
    if status >= 500 or (isinstance(error, str) and error in _PROVIDER_SIDE_ERRORS):
        raise unavailable(title, f"reported {error or f'HTTP {status}'}")
    # An `error` member means a refusal whatever the status (Mail.ru answers it with 200).
    if error is not None or status in _REFUSAL_STATUSES[endpoint]:
        text = _error_text(body) or f"HTTP {status}"
        if endpoint == "token" and (error == "invalid_client" or status == 401):
            raise ClientAuthRefused(title, text)
        if endpoint == "userinfo":
            raise ApiError(
                401, "invalid_provider_token", f"{title} rejected the access token: {text}"
            )
        raise ApiError(400, "invalid_grant", f"{title} refused the code: {text}")
    if status != 200:
        raise unavailable(title, f"answered HTTP {status}")
    if body is _NOT_JSON:
        raise unavailable(title, "answered something that is not JSON")
    if not isinstance(body, dict):
        raise unavailable(title, "answered JSON that is not an object")
    return body


def unavailable(title: str, reason: str) -> ApiError:
    # Logged once, by the sign-in flow, as a security event carrying this description.
    return ApiError(502, "provider_unavailable", f"{title} {reason}.")


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


def seconds_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
