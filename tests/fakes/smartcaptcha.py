"""A strict fake of Yandex SmartCaptcha's /validate on 127.0.0.1, from its public docs.

Form-encoded `secret`, `token`, `ip`; a token the test made with `solve()` passes once
(tokens are single use), anything else fails with the documented messages. `mode`:
"down" answers 503, "hang" never answers within a client's timeout.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.fakes.threaded_http import ThreadedHttpFake, fake_of

CAPTCHA_SERVER_KEY = "ysc2_test-server-key-of-the-fake"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        fake: SmartCaptchaFake = fake_of(self)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        form = {key: values[-1] for key, values in parse_qs(body).items()}
        fake.requests.append(form)
        if fake.mode == "hang":
            time.sleep(3)
        if fake.mode == "down":
            self._answer(503, {"status": "failed", "message": "unavailable"})
            return
        if self.path != "/validate" or "x-www-form-urlencoded" not in (
            self.headers.get("Content-Type") or ""
        ):
            self._answer(400, {"status": "failed", "message": "bad request"})
            return
        if form.get("secret") != CAPTCHA_SERVER_KEY:
            message = "Authentication failed. Secret has not provided."
            self._answer(200, {"status": "failed", "message": message})
            return
        token = form.get("token", "")
        if token in fake.valid:
            fake.valid.discard(token)  # single use
            self._answer(200, {"status": "ok", "message": "", "host": "app.example.com"})
        else:
            self._answer(200, {"status": "failed", "message": "Token invalid or expired."})

    def _answer(self, status: int, answer: Any) -> None:
        body = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # "hang": the client gave up before the answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class SmartCaptchaFake(ThreadedHttpFake):
    mode: str = "normal"
    valid: set[str] = field(default_factory=set)
    requests: list[dict[str, str]] = field(default_factory=list)
    handler = _Handler

    def solve(self) -> str:
        """A token as the widget gives a human who solved it."""
        token = "dD0xNzQ" + secrets.token_urlsafe(24)
        self.valid.add(token)
        return token


@pytest.fixture
def smartcaptcha() -> Iterator[SmartCaptchaFake]:
    fake = SmartCaptchaFake().start()
    yield fake
    fake.stop()
