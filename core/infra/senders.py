"""What a delivery channel raises when it did not take a message, and the `sms.sender`:
the built-in `http` sender or a plugin of the entry-point group `vhod.senders`.

Apart from core.infra.delivery so that the phone channels (core.infra.phone_channels,
core.infra.sms_gateways) can use them while delivery builds its chain of those channels.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import metadata
from typing import Protocol

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from core.config.lifecycle_settings import SmsConfig

SENDER_GROUP = "vhod.senders"


class DeliveryError(Exception):
    """The channel did not take the message: `refused` when it answered no (an SMTP error
    reply, a gateway's HTTP error status), else it was down or timed out."""

    def __init__(self, reason: str, *, refused: bool = False) -> None:
        super().__init__(reason)
        self.refused = refused


class SmsSender(Protocol):
    async def send(self, phone: str, text: str) -> None:
        """Hand the text to the gateway; DeliveryError when it did not take it."""


class HttpSmsSender:
    """POSTs {"to": "+7…", "text": "…"} as JSON to `sms.url`; any 2xx is success."""

    def __init__(self, config: SmsConfig) -> None:
        assert config.url is not None
        self.url = config.url
        self.headers = {"Content-Type": "application/json"}
        if config.secret:
            self.headers[config.secret_header] = config.secret
        self.timeout = config.timeout

    async def send(self, phone: str, text: str) -> None:
        request = HTTPRequest(
            self.url,
            method="POST",
            headers=self.headers,
            body=json.dumps({"to": phone, "text": text}, ensure_ascii=False),
            connect_timeout=self.timeout,
            request_timeout=self.timeout,
            follow_redirects=False,
        )
        try:
            await AsyncHTTPClient().fetch(request)
        except (HTTPClientError, OSError, TimeoutError) as exc:
            # 599 is Tornado's own code for no answer (refused connection, timeout).
            refused = isinstance(exc, HTTPClientError) and exc.code != 599
            raise DeliveryError(type(exc).__name__, refused=refused) from exc


def load_sms_sender(config: SmsConfig) -> SmsSender | None:
    """The sender `sms.sender` names; ValueError for an unknown or broken plugin."""
    if config.sender is None:
        return None
    if config.sender == "http":
        return HttpSmsSender(config)
    for entry in metadata.entry_points(group=SENDER_GROUP):
        if entry.name == config.sender:
            try:
                factory: Callable[[SmsConfig], SmsSender] = entry.load()
                return factory(config)
            except Exception as exc:  # a plugin may fail in any way; say which one
                raise ValueError(f"sms.sender: plugin {entry.value} failed: {exc!r}") from exc
    raise ValueError(f"sms.sender: no sender {config.sender!r} (http, or a {SENDER_GROUP} plugin)")
