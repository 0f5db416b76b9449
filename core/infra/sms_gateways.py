"""Code channels for phone numbers: Telegram Gateway, SMS.ru, SMSC.ru, and an ordered chain.

Each channel speaks one gateway's public HTTP API (docs/code-sign-in.md says
which facts rest on the vendors' docs). A channel either takes the message, or raises:

- `Unreachable`: this number cannot get a message through this channel (no Telegram
  account, no route); the chain tries the next channel;
- `Refused`: the gateway said no for a reason of ours or its own (bad token, no money,
  a limit); the chain tries the next channel too, and the operator is told why;
- `DeliveryError` (the parent of both): down, timed out, or an answer we cannot read.

Nothing here logs or returns the code, the text or the number: a reason is a gateway's
status code or an exception's class name, never a body.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from core.infra.senders import DeliveryError

TELEGRAM_GATEWAY_URL = "https://gatewayapi.telegram.org"
SMSRU_URL = "https://sms.ru"
SMSC_URL = "https://smsc.ru"
# Telegram Gateway refunds a message not delivered within `ttl`; it takes 30 to 3600 s.
TELEGRAM_TTL_RANGE = (30, 3600)
MAX_REASON = 64  # a gateway's error string is cut to this before it reaches a log or metric


class Refused(DeliveryError):
    """The gateway answered and would not take the message."""


class Unreachable(DeliveryError):
    """This number cannot be reached through this channel; another may reach it."""


class CodeChannel(Protocol):
    """One way to put a code on a phone; `name` is the operator's label (metrics, events)."""

    name: str

    async def send_code(self, phone: str, code: str, text: str, ttl: int) -> None:
        """Deliver; raise a DeliveryError (Refused, Unreachable) when it was not taken."""


def printable(value: Any) -> str:
    """A gateway's error word, safe to log: printable ASCII, bounded."""
    text = "".join(ch for ch in str(value) if ch.isascii() and ch.isprintable())
    return text[:MAX_REASON] or "unknown"


async def _call(
    url: str,
    *,
    form: Mapping[str, str] | None = None,
    json_body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    seconds: float,
) -> Any:
    """POST and parse the JSON answer; DeliveryError for anything but a readable JSON body.

    Gateways answer errors in a 200 body as often as with a status, so a 4xx body that
    parses is returned to the caller to read its error code."""
    all_headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body, ensure_ascii=False)
        all_headers["Content-Type"] = "application/json"
    else:
        body = urlencode(form or {})
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = HTTPRequest(
        url,
        method="POST",
        headers=all_headers,
        body=body,
        connect_timeout=seconds,
        request_timeout=seconds,
        follow_redirects=False,
    )
    try:
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
    except (HTTPClientError, OSError, TimeoutError) as exc:  # timed out, refused, reset
        raise DeliveryError(type(exc).__name__) from exc
    if response.code >= 500:
        raise DeliveryError(f"HTTP {response.code}")
    try:
        return json.loads(response.body or b"")
    except ValueError as exc:
        raise DeliveryError(f"HTTP {response.code}, not JSON") from exc


@dataclass
class TelegramGateway:
    """Telegram Gateway: checkSendAbility, then sendVerificationMessage with our own code.

    The check costs one fee and the send that names its request_id is free, so a number
    without Telegram costs one check and falls through. `ttl` makes Telegram refund a
    message it could not deliver in time."""

    token: str
    url: str = TELEGRAM_GATEWAY_URL
    timeout: float = 10.0
    sender_username: str | None = None
    name: str = "telegram_gateway"

    async def _method(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        answer = await _call(
            f"{self.url.rstrip('/')}/{method}",
            json_body=params,
            headers={"Authorization": f"Bearer {self.token}"},
            seconds=self.timeout,
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
            raise DeliveryError("telegram: not an API envelope")
        if not answer["ok"]:
            error = printable(answer.get("error"))
            # The token is ours to fix; every other refusal is about this number or send.
            if error == "ACCESS_TOKEN_INVALID":
                raise Refused(f"telegram: {error}")
            raise Unreachable(f"telegram: {error}")
        result = answer.get("result")
        if not isinstance(result, dict):
            raise DeliveryError("telegram: no result")
        return result

    async def send_code(self, phone: str, code: str, text: str, ttl: int) -> None:
        ability = await self._method("checkSendAbility", {"phone_number": phone})
        request_id = ability.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise DeliveryError("telegram: no request_id")
        low, high = TELEGRAM_TTL_RANGE
        params: dict[str, Any] = {
            "phone_number": phone,
            "request_id": request_id,
            "code": code,
            "ttl": min(max(ttl, low), high),
        }
        if self.sender_username:
            params["sender_username"] = self.sender_username
        await self._method("sendVerificationMessage", params)


# SMS.ru status codes that are about the number or its route: another gateway may get there.
SMSRU_UNREACHABLE = frozenset({202, 207, 209, 230, 231, 232, 233, 550})


@dataclass
class SmsRu:
    """SMS.ru's /sms/send (POST form, json=1): every number has its own status in the answer."""

    api_id: str
    url: str = SMSRU_URL
    timeout: float = 10.0
    sender: str | None = None
    name: str = "smsru"

    async def send_code(self, phone: str, code: str, text: str, ttl: int) -> None:
        to = phone.lstrip("+")
        form = {"api_id": self.api_id, "to": to, "msg": text, "json": "1"}
        # The message is worth nothing after the code expires: let the gateway drop it.
        form["ttl"] = str(min(max(math.ceil(ttl / 60), 1), 1440))
        if self.sender:
            form["from"] = self.sender
        answer = await _call(f"{self.url.rstrip('/')}/sms/send", form=form, seconds=self.timeout)
        if not isinstance(answer, dict):
            raise DeliveryError("smsru: not an object")
        if answer.get("status") != "OK":
            raise Refused(f"smsru: status_code {printable(answer.get('status_code'))}")
        numbers = answer.get("sms")
        entry = numbers.get(to) if isinstance(numbers, dict) else None
        if not isinstance(entry, dict):
            raise DeliveryError("smsru: no status for the number")
        if entry.get("status") != "OK":
            status = entry.get("status_code")
            error = Unreachable if status in SMSRU_UNREACHABLE else Refused
            raise error(f"smsru: status_code {printable(status)}")


# SMSC.ru error codes about the number or the message: 7 bad format, 8 undeliverable.
SMSC_UNREACHABLE = frozenset({7, 8})


@dataclass
class Smsc:
    """SMSC.ru's /sys/send.php (POST form, fmt=3 for JSON), by login and password or apikey."""

    login: str | None = None
    password: str | None = None
    apikey: str | None = None
    url: str = SMSC_URL
    timeout: float = 10.0
    sender: str | None = None
    name: str = "smsc"

    async def send_code(self, phone: str, code: str, text: str, ttl: int) -> None:
        form = {"phones": phone, "mes": text, "fmt": "3", "charset": "utf-8"}
        if self.apikey:
            form["apikey"] = self.apikey
        else:
            form["login"], form["psw"] = self.login or "", self.password or ""
        if self.sender:
            form["sender"] = self.sender
        answer = await _call(
            f"{self.url.rstrip('/')}/sys/send.php", form=form, seconds=self.timeout
        )
        if not isinstance(answer, dict):
            raise DeliveryError("smsc: not an object")
        if "error_code" in answer or "error" in answer:
            status = answer.get("error_code")
            error = Unreachable if status in SMSC_UNREACHABLE else Refused
            raise error(f"smsc: error_code {printable(status)}")
        if not isinstance(answer.get("id"), int):
            raise DeliveryError("smsc: no message id")
