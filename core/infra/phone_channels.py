"""The phone channels as one chain: `sms.channels` (and `sms.sender`) in order, each tried
until one takes the code, within a deadline; and the settings that build them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.config.lifecycle_settings import SmsConfig
from core.domain.event_types import EventType
from core.domain.events import security_event
from core.infra.senders import DeliveryError, SmsSender, load_sms_sender
from core.infra.sms_gateways import (
    CodeChannel,
    Refused,
    Smsc,
    SmsRu,
    TelegramGateway,
    Unreachable,
    printable,
)


@dataclass
class SenderChannel:
    """An `sms.sender` (the http sender or a vhod.senders plugin) as a channel: text only.

    The one way a sender reaches a phone, alone or in a chain. A plugin is foreign code, so:
    any exception it raises means the message was not taken (a DeliveryError naming only
    the class, whose text may quote anything); and its own DeliveryError's text is cut to
    printable ASCII with the number and the code masked, as it goes on to logs and events."""

    sender: SmsSender
    name: str = "http"

    async def send_code(self, phone: str, code: str, text: str, ttl: int) -> None:
        try:
            await self.sender.send(phone, text)
        except DeliveryError as exc:  # its kind kept: the chain counts the outcome by it
            kind = next(k for k in (Unreachable, Refused, DeliveryError) if isinstance(exc, k))
            raise kind(_masked(str(exc), phone, code), refused=exc.refused) from exc
        except Exception as exc:
            raise DeliveryError(type(exc).__name__) from exc


def _masked(reason: str, phone: str, code: str) -> str:
    for secret in (code, phone, phone.removeprefix("+")):
        if secret:
            reason = reason.replace(secret, "***")
    return printable(reason)


Report = Callable[[str, str, str | None], None]  # (channel name, outcome, reason)


class ChannelChain:
    """Tries the channels in order until one takes the message, within `deadline` seconds.

    `report` hears every attempt: (name, one of core.infra.metrics.DELIVERY_OUTCOMES, reason or
    None). The chain raises the last channel's error when none took it, or
    DeliveryError("deadline")."""

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
                self._failed(channel.name, _outcome(exc), printable(exc))
                continue
            self.report(channel.name, "sent", None)
            return channel.name
        raise last

    def _failed(self, name: str, outcome: str, reason: str) -> None:
        security_event(EventType.CODE_DELIVERY_FAILED, channel=name, outcome=outcome, reason=reason)
        self.report(name, outcome, reason)


def _outcome(error: DeliveryError) -> str:
    if isinstance(error, Unreachable):
        return "unreachable"
    if isinstance(error, Refused) or error.refused:
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


def phone_chain(
    config: SmsConfig, report: Report | None = None, *, sender: SmsSender | None = None
) -> ChannelChain | None:
    """The phone channels `sms` configures, in order: `sms.channels`, then `sms.sender`
    (unless a `{type: sender}` entry places it); None when there is none. `sender`: the
    `sms.sender` already made (a test's), else loaded here."""
    specs = list(config.channels)
    if sender is None:
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
