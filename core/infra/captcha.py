"""Yandex SmartCaptcha's server-side check of a token the browser widget gave the client.

`POST <url>/validate` with the form fields `secret`, `token` and `ip`; the answer is
`{"status": "ok" | "failed", "message": …}`. A token is single use and lives 5 minutes.
Yandex advises treating a non-200 answer as a pass; vhod lets the operator choose
(`captcha.fail_open`) and fails closed by default: a sign-in service that sends paid SMS
is what pumping bots look for when the CAPTCHA service is down.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from core.domain.errors import ApiError

SMARTCAPTCHA_URL = "https://smartcaptcha.yandexcloud.net"
MAX_TOKEN = 4096  # a widget token is a few hundred bytes; longer input is no token


def captcha_required() -> ApiError:
    return ApiError(400, "captcha_required", "Solve the CAPTCHA and send its token as `captcha`.")


@dataclass(frozen=True)
class SmartCaptcha:
    server_key: str
    url: str = SMARTCAPTCHA_URL
    timeout: float = 5.0
    fail_open: bool = False

    async def passes(self, token: str | None, client_ip: str | None) -> bool:
        """True when SmartCaptcha says the token is a human's, fresh and unused."""
        if not token or len(token) > MAX_TOKEN:
            return False
        form = {"secret": self.server_key, "token": token}
        if client_ip:
            form["ip"] = client_ip
        request = HTTPRequest(
            f"{self.url.rstrip('/')}/validate",
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode(form),
            connect_timeout=self.timeout,
            request_timeout=self.timeout,
            follow_redirects=False,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (HTTPClientError, OSError, TimeoutError):  # timed out, refused, reset
            return self.fail_open
        if response.code != 200:
            return self.fail_open  # no answer, or not one we can trust either way
        try:
            answer = json.loads(response.body or b"")
        except ValueError:
            return self.fail_open
        return isinstance(answer, dict) and answer.get("status") == "ok"
