"""Code channels for phone numbers: Telegram Gateway, SMS.ru, SMSC.ru, and an ordered chain.

Each channel speaks one gateway's public HTTP API (facts and their sources are in
docs/sign-in-with-a-code.md). A channel either takes the message, or raises:

- `Unreachable`: this number cannot get a message through this channel (no Telegram
  account, no route); the chain tries the next channel;
- `Refused`: the gateway said no for a reason of ours or its own (bad token, no money,
  a limit); the chain tries the next channel too, and the operator is told why;
- `DeliveryError` (the parent of both): down, timed out, or an answer we cannot read.

Nothing here logs or returns the code, the text or the number: a reason is a gateway's
status code or an exception's class name, never a body.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from core.delivery import DeliveryError, SmsSender, load_sms_sender
from core.events import security_event
from core.lifecycle_settings import SmsConfig

TELEGRAM_GATEWAY_URL = "https://gatewayapi.telegram.org"
SMSRU_URL = "https://sms.ru"
SMSC_URL = "https://smsc.ru"
# Telegram Gateway refunds a message not delivered within `ttl`; it takes 30 to 3600 s.
TELEGRAM_TTL_RANGE = (30, 3600)
MAX_REASON = 64  # a gateway's error string is cut to this before it reaches a log or metric
OUTCOMES = ("sent", "refused", "failed", "unreachable")


class Refused(DeliveryError):
    """The gateway answered and would not take the message."""


class Unreachable(DeliveryError):
    """This number cannot be reached through this channel; another may reach it."""


class CodeChannel(Protocol):
    """One way to put a code on a phone; `name` is the operator's label (metrics, events)."""

    name: str

    async def send_code(self, phone: str, code: str, text: str, ttl: int) -> None:
        """Deliver; raise a DeliveryError (Refused, Unreachable) when it was not taken."""


def _reason(value: Any) -> str:
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
            error = _reason(answer.get("error"))
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
            raise Refused(f"smsru: status_code {_reason(answer.get('status_code'))}")
        numbers = answer.get("sms")
        entry = numbers.get(to) if isinstance(numbers, dict) else None
        if not isinstance(entry, dict):
            raise DeliveryError("smsru: no status for the number")
        if entry.get("status") != "OK":
            status = entry.get("status_code")
            error = Unreachable if status in SMSRU_UNREACHABLE else Refused
            raise error(f"smsru: status_code {_reason(status)}")


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
            raise error(f"smsc: error_code {_reason(status)}")
        if not isinstance(answer.get("id"), int):
            raise DeliveryError("smsc: no message id")


@dataclass
class SenderChannel:
    """An `sms.sender` (the http sender or a vhod.senders plugin) as a channel: text only."""

    sender: SmsSender
    name: str = "http"

    async def send_code(self, phone: str, code: str, text: str, ttl: int) -> None:
        await self.sender.send(phone, text)


Report = Callable[[str, str, str | None], None]  # (channel name, outcome, reason)


class ChannelChain:
    """Tries the channels in order until one takes the message, within `deadline` seconds.

    `report` hears every attempt: (name, one of OUTCOMES, reason or None). The chain
    raises the last channel's error when none took it, or DeliveryError("deadline")."""

    def __init__(
        self,
        channels: Sequence[CodeChannel],
        *,
        deadline: float = 20.0,
        report: Report | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not channels:
            raise ValueError("a chain needs at least one channel")
        self.channels = list(channels)
        self.deadline = deadline
        self.report = report or (lambda name, outcome, reason: None)
        self.monotonic = monotonic

    @property
    def names(self) -> list[str]:
        return [channel.name for channel in self.channels]

    @property
    def messengers(self) -> frozenset[str]:
        """The channels that deliver in a messenger, not as a text message (RFC 8176 otp)."""
        return frozenset(c.name for c in self.channels if isinstance(c, TelegramGateway))

    async def send_code(self, phone: str, code: str, text: str, ttl: int) -> str:
        """The name of the channel that took the message."""
        ends = self.monotonic() + self.deadline
        last: DeliveryError = DeliveryError("no channel")
        for channel in self.channels:
            left = ends - self.monotonic()
            if left <= 0:
                last = DeliveryError("deadline")
                break
            try:
                await asyncio.wait_for(channel.send_code(phone, code, text, ttl), left)
            except TimeoutError:
                last = DeliveryError("deadline")
                self._failed(channel.name, "failed", "deadline")
                continue
            except DeliveryError as exc:
                last = exc
                self._failed(channel.name, _outcome(exc), _reason(exc))
                continue
            self.report(channel.name, "sent", None)
            return channel.name
        raise last

    def _failed(self, name: str, outcome: str, reason: str) -> None:
        security_event("code_delivery_failed", channel=name, outcome=outcome, reason=reason)
        self.report(name, outcome, reason)


def _outcome(error: DeliveryError) -> str:
    if isinstance(error, Unreachable):
        return "unreachable"
    if isinstance(error, Refused):
        return "refused"
    return "failed"


CHANNEL_TYPES = ("telegram_gateway", "smsru", "smsc")
FOREIGN_MESSENGERS = frozenset({"telegram_gateway"})


def build_channel(spec: Mapping[str, Any], index: int, *, timeout: float) -> CodeChannel:
    """One channel from its `sms.channels` entry; ValueError names the entry and the key."""
    where = f"sms.channels[{index}]"
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: must be a mapping with a type")
    kind = spec.get("type")
    allowed = {
        "telegram_gateway": {"type", "name", "token", "url", "timeout", "sender_username"},
        "smsru": {"type", "name", "api_id", "url", "timeout", "sender"},
        "smsc": {"type", "name", "login", "password", "apikey", "url", "timeout", "sender"},
    }
    if kind not in allowed:
        raise ValueError(f"{where}.type: must be one of {', '.join(CHANNEL_TYPES)}")
    unknown = sorted(set(spec) - allowed[kind])
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} for type {kind}")

    def text(key: str, required: bool = False) -> str | None:
        value = spec.get(key)
        if value is None or value == "":
            if required:
                raise ValueError(f"{where}.{key}: required for type {kind}")
            return None
        if not isinstance(value, str):
            raise ValueError(f"{where}.{key}: must be a string")
        return value

    url = text("url")
    if url is not None and not url.startswith(("https://", "http://")):
        raise ValueError(f"{where}.url: must be an http(s) URL")
    seconds = spec.get("timeout", timeout)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise ValueError(f"{where}.timeout: must be a number of seconds above 0")
    common: dict[str, Any] = {"timeout": float(seconds), "name": text("name") or kind}
    if url is not None:
        common["url"] = url
    if kind == "telegram_gateway":
        token = text("token", required=True)
        assert token is not None
        return TelegramGateway(token=token, sender_username=text("sender_username"), **common)
    if kind == "smsru":
        api_id = text("api_id", required=True)
        assert api_id is not None
        return SmsRu(api_id=api_id, sender=text("sender"), **common)
    apikey, login, password = text("apikey"), text("login"), text("password")
    if not apikey and not (login and password):
        raise ValueError(f"{where}: smsc needs apikey, or login and password")
    return Smsc(login=login, password=password, apikey=apikey, sender=text("sender"), **common)


def build_channels(
    specs: Sequence[Mapping[str, Any]], *, timeout: float, foreign_messengers: bool
) -> list[CodeChannel]:
    """The `sms.channels` list as channels, in order; names must be unique (metric labels)."""
    channels: list[CodeChannel] = []
    for index, spec in enumerate(specs):
        channel = build_channel(spec, index, timeout=timeout)
        if not foreign_messengers and spec.get("type") in FOREIGN_MESSENGERS:
            raise ValueError(
                f"sms.channels[{index}]: {spec.get('type')} is off with "
                "sms.foreign_messengers: false"
            )
        if channel.name in {c.name for c in channels}:
            raise ValueError(f"sms.channels[{index}].name: {channel.name!r} is used twice")
        channels.append(channel)
    return channels


def phone_chain(config: SmsConfig, report: Report | None = None) -> ChannelChain | None:
    """The phone channels `sms` configures, in order: `sms.channels`, then `sms.sender`
    (unless a `{type: sender}` entry places it); None when there is none."""
    specs = list(config.channels)
    sender = load_sms_sender(config)
    channels: list[CodeChannel] = []
    placed = False
    for index, spec in enumerate(specs):
        if isinstance(spec, Mapping) and spec.get("type") == "sender":
            if sender is None or placed:
                raise ValueError(f"sms.channels[{index}]: type sender needs sms.sender, once")
            channels.append(SenderChannel(sender, name=config.sender or "sender"))
            placed = True
            continue
        channels.extend(
            build_channels(
                [spec], timeout=config.timeout, foreign_messengers=config.foreign_messengers
            )
        )
    if sender is not None and not placed:
        channels.append(SenderChannel(sender, name=config.sender or "sender"))
    names = [channel.name for channel in channels]
    if len(set(names)) != len(names):
        raise ValueError("sms.channels: every channel needs a name of its own")
    if not channels:
        return None
    return ChannelChain(channels, deadline=config.fallback_deadline, report=report)
