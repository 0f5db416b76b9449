"""A real SMTP server (aiosmtpd) and an HTTP SMS receiver on 127.0.0.1, for the code tests.

Both run in threads of their own, so they serve in-process apps and server processes alike.
Tests read the codes from what they received:

    code = smtp_inbox.code_for("ann@example.com")      # the digits of the last message there
    code = sms_inbox.code_for("+79161234567")

`smtp_inbox.config()` and `sms_inbox.config()` are the vhod settings that point at them.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import re
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.fakes.threaded_http import ThreadedHttpFake, fake_of
from tests.processes import free_port

SMS_SECRET = "shared-secret-of-the-sms-gateway"
SMTP_USER, SMTP_PASSWORD = "vhod", "smtp-pass:w@rd"
_CODE = re.compile(r"\b(\d{4,10})\b")


@dataclass
class SmtpInbox:
    """Every message the SMTP server accepted, newest last; AUTH is required when set."""

    require_auth: bool = False
    # A server-side SSLContext: TLS from the first byte (smtps), or offered as STARTTLS
    # and then required.
    implicit_tls: ssl.SSLContext | None = None
    starttls: ssl.SSLContext | None = None
    messages: list[tuple[list[str], Message]] = field(default_factory=list)
    port: int = 0
    # `arrived` is set when a message's DATA comes in; while `hold` is clear, the server
    # keeps that message waiting (a slow mail server).
    arrived: threading.Event = field(default_factory=threading.Event)
    hold: threading.Event | None = None
    _controller: Controller | None = None

    # aiosmtpd handler hooks
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.arrived.set()
        if self.hold is not None:
            await asyncio.to_thread(self.hold.wait, 30)
        self.messages.append(
            (
                list(envelope.rcpt_tos),
                email.message_from_bytes(envelope.content, policy=email.policy.default),
            )
        )
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        return AuthResult(success=ok)

    def start(self) -> SmtpInbox:
        self.port = free_port()
        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self.authenticate,
            auth_required=self.require_auth,
            auth_require_tls=False,
            ssl_context=self.implicit_tls,
            tls_context=self.starttls,
            require_starttls=self.starttls is not None,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def config(self, *, with_auth: bool = False) -> dict[str, Any]:
        credentials = "vhod:smtp-pass%3Aw%40rd@" if with_auth else ""
        return {
            "email.smtp_url": f"smtp://{credentials}127.0.0.1:{self.port}",
            "email.from": "vhod@example.com",
            "email.timeout": 5,
        }

    def to(self, address: str) -> list[Message]:
        return [message for rcpts, message in self.messages if address in rcpts]

    def code_for(self, address: str, timeout: float = 5.0) -> str:
        message = _wait(lambda: (self.to(address) or [None])[-1], timeout, f"mail to {address}")
        body = message.get_content()
        return _CODE.search(body).group(1)  # type: ignore[union-attr]


class _SmsHandler(BaseHTTPRequestHandler):
    inbox: SmsInbox

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        inbox = fake_of(self)
        inbox.requests.append({"headers": dict(self.headers), "body": body})
        if inbox.mode == "down" or self.headers.get("X-Vhod-Secret") != SMS_SECRET:
            self.send_response(503 if inbox.mode == "down" else 403)
            self.end_headers()
            return
        message = json.loads(body)
        inbox.messages.append((message["to"], message["text"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "queued"}')

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@dataclass
class SmsInbox(ThreadedHttpFake):
    """The SMS gateway: takes POSTed JSON with the shared secret; `mode = "down"` refuses."""

    mode: str = "normal"
    messages: list[tuple[str, str]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    handler = _SmsHandler

    def config(self) -> dict[str, Any]:
        return {
            "sms.sender": "http",
            "sms.url": f"http://127.0.0.1:{self.port}/send",
            "sms.secret": SMS_SECRET,
            "sms.timeout": 5,
        }

    def to(self, phone: str) -> list[str]:
        return [text for to, text in self.messages if to == phone]

    def code_for(self, phone: str, timeout: float = 5.0) -> str:
        text = _wait(lambda: (self.to(phone) or [None])[-1], timeout, f"SMS to {phone}")
        return _CODE.search(text).group(1)  # type: ignore[union-attr]


def _wait(found: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value is not None:
            return value
        time.sleep(0.02)
    raise AssertionError(f"no {what} arrived")


@pytest.fixture
def smtp_inbox() -> Iterator[SmtpInbox]:
    inbox = SmtpInbox().start()
    yield inbox
    inbox.stop()


@pytest.fixture
def sms_inbox() -> Iterator[SmsInbox]:
    inbox = SmsInbox().start()
    yield inbox
    inbox.stop()
