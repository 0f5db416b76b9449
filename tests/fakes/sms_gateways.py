"""Strict fakes of Telegram Gateway, SMS.ru and SMSC.ru on 127.0.0.1, from their public API docs.

Each refuses what the real service refuses, in the real service's answer shape: a wrong
token or key, a malformed number, a missing field. Tests read the codes they delivered:

    gateway = TelegramGatewayFake().start()
    gateway.unreachable.add("+79161234567")      # no Telegram account: checkSendAbility fails
    code = gateway.code_for("+79161234567")

`mode = "down"` answers 503 to everything (a gateway that is down).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fakes.threaded_http import ThreadedHttpFake, fake_of

TELEGRAM_TOKEN = "AAH-telegram-gateway-token-of-the-test"
SMSRU_API_ID = "6B2C1E7A-0000-4D2E-9F00-SMSRU-TEST"
SMSC_LOGIN, SMSC_PASSWORD = "vhod", "smsc-password"
_E164 = re.compile(r"^\+?[1-9]\d{7,14}$")
_CODE = re.compile(r"\b(\d{4,10})\b")


class _Handler(BaseHTTPRequestHandler):
    def _params(self) -> dict[str, str] | None:
        """Query, form or JSON parameters; None when the body cannot be read as declared."""
        query = {key: values[-1] for key, values in parse_qs(urlsplit(self.path).query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if not body:
            return query
        if kind == "application/json":
            try:
                data = json.loads(body)
            except ValueError:
                return None
            if not isinstance(data, dict):
                return None
            return {**query, **{key: value for key, value in data.items()}}
        if kind == "application/x-www-form-urlencoded":
            try:
                form = parse_qs(body.decode("utf-8"), strict_parsing=True)
            except (UnicodeDecodeError, ValueError):
                return None
            return {**query, **{key: values[-1] for key, values in form.items()}}
        return None

    def do_POST(self) -> None:
        fake: _Fake = fake_of(self)
        params = self._params()
        fake.requests.append({"path": urlsplit(self.path).path, "params": params})
        if fake.mode == "down":
            self._answer(503, {"error": "down"})
            return
        status, answer = fake.handle(urlsplit(self.path).path, params, dict(self.headers))
        self._answer(status, answer)

    do_GET = do_POST

    def _answer(self, status: int, answer: Any) -> None:
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@dataclass
class _Fake(ThreadedHttpFake):
    mode: str = "normal"
    requests: list[dict[str, Any]] = field(default_factory=list)
    # (phone as the test writes it, "+7…", the text or code delivered)
    delivered: list[tuple[str, str]] = field(default_factory=list)
    handler = _Handler

    def handle(
        self, path: str, params: dict[str, str] | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        raise NotImplementedError

    def to(self, phone: str) -> list[str]:
        return [what for to, what in self.delivered if to == phone]

    def code_for(self, phone: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := self.to(phone):
                return _CODE.search(found[-1]).group(1)  # type: ignore[union-attr]
            time.sleep(0.02)
        raise AssertionError(f"nothing reached {phone} through {type(self).__name__}")


def _plus(number: str) -> str:
    return number if number.startswith("+") else f"+{number}"


@dataclass
class TelegramGatewayFake(_Fake):
    """gatewayapi.telegram.org: Bearer token; checkSendAbility then sendVerificationMessage."""

    unreachable: set[str] = field(default_factory=set)  # "+7…" numbers without Telegram
    issued: dict[str, dict[str, Any]] = field(default_factory=dict)  # request_id → its state

    def config(self) -> dict[str, Any]:
        return {"type": "telegram_gateway", "token": TELEGRAM_TOKEN, "url": self.url}

    def handle(
        self, path: str, params: dict[str, str] | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        token = (headers.get("Authorization") or "").removeprefix("Bearer ")
        if params is not None and "access_token" in params:
            token = str(params["access_token"])
        if token != TELEGRAM_TOKEN:
            return 200, {"ok": False, "error": "ACCESS_TOKEN_INVALID"}
        if params is None:
            return 200, {"ok": False, "error": "BAD_REQUEST"}
        method = path.strip("/").lower()  # method names are case-insensitive
        phone = params.get("phone_number")
        if not isinstance(phone, str) or not _E164.match(phone):
            return 200, {"ok": False, "error": "PHONE_NUMBER_INVALID"}
        if method == "checksendability":
            if _plus(phone) in self.unreachable:
                return 200, {"ok": False, "error": "PHONE_NUMBER_NOT_AVAILABLE"}
            request_id = f"req-{len(self.issued) + 1}"
            self.issued[request_id] = {"phone": phone, "sent": False}
            return 200, {
                "ok": True,
                "result": {"request_id": request_id, "phone_number": phone, "request_cost": 0.01},
            }
        if method == "sendverificationmessage":
            code = params.get("code")
            if not isinstance(code, str) or not code.isdigit() or not 4 <= len(code) <= 8:
                return 200, {"ok": False, "error": "CODE_INVALID"}
            ttl = params.get("ttl")
            if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int)):
                return 200, {"ok": False, "error": "TTL_INVALID"}
            if ttl is not None and not 30 <= ttl <= 3600:
                return 200, {"ok": False, "error": "TTL_INVALID"}
            request_id = params.get("request_id")
            if request_id is not None:
                state = self.issued.get(str(request_id))
                if state is None or state["phone"] != phone or state["sent"]:
                    return 200, {"ok": False, "error": "REQUEST_ID_INVALID"}
                state["sent"] = True
            elif _plus(phone) in self.unreachable:
                return 200, {"ok": False, "error": "PHONE_NUMBER_NOT_AVAILABLE"}
            self.delivered.append((_plus(phone), code))
            return 200, {
                "ok": True,
                "result": {
                    "request_id": str(request_id or "direct"),
                    "phone_number": phone,
                    "request_cost": 0 if request_id else 0.01,
                    "delivery_status": {"status": "sent", "updated_at": int(time.time())},
                },
            }
        return 200, {"ok": False, "error": "METHOD_NOT_FOUND"}


@dataclass
class SmsRuFake(_Fake):
    """sms.ru/sms/send: api_id, to, msg, json=1; a status per number, 100 for accepted."""

    no_route: set[str] = field(default_factory=set)  # "+7…" numbers answered 207

    def config(self) -> dict[str, Any]:
        return {"type": "smsru", "api_id": SMSRU_API_ID, "url": self.url}

    def handle(
        self, path: str, params: dict[str, str] | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        if path != "/sms/send":
            return 404, {"status": "ERROR", "status_code": 211, "status_text": "no method"}
        if params is None:
            return 200, {"status": "ERROR", "status_code": 212, "status_text": "not UTF-8"}
        if params.get("api_id") != SMSRU_API_ID:
            return 200, {"status": "ERROR", "status_code": 200, "status_text": "bad api_id"}
        if params.get("json") != "1":
            return 200, {"status": "ERROR", "status_code": 211, "status_text": "json=1 missing"}
        text = params.get("msg")
        if not text:
            return 200, {"status": "ERROR", "status_code": 203, "status_text": "no text"}
        ttl = params.get("ttl")
        if ttl is not None and not (ttl.isdigit() and 1 <= int(ttl) <= 1440):
            return 200, {"status": "ERROR", "status_code": 208, "status_text": "bad ttl"}
        numbers = [n for n in (params.get("to") or "").split(",") if n]
        if not numbers:
            return 200, {"status": "ERROR", "status_code": 202, "status_text": "no number"}
        result: dict[str, Any] = {}
        for number in numbers:
            if not number.isdigit() or not _E164.match(number):
                result[number] = {"status": "ERROR", "status_code": 202, "status_text": "bad"}
            elif _plus(number) in self.no_route:
                result[number] = {"status": "ERROR", "status_code": 207, "status_text": "route"}
            else:
                self.delivered.append((_plus(number), text))
                result[number] = {"status": "OK", "status_code": 100, "sms_id": "000000-1"}
        return 200, {"status": "OK", "status_code": 100, "sms": result, "balance": 4122.56}


@dataclass
class SmscFake(_Fake):
    """smsc.ru/sys/send.php: login+psw or apikey, phones, mes, fmt=3 for JSON."""

    def config(self) -> dict[str, Any]:
        return {"type": "smsc", "login": SMSC_LOGIN, "password": SMSC_PASSWORD, "url": self.url}

    def handle(
        self, path: str, params: dict[str, str] | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        if path != "/sys/send.php" or params is None:
            return 200, {"error": "parameters error", "error_code": 1}
        if params.get("fmt") != "3":  # other formats answer plain text; vhod reads JSON only
            return 200, {"error": "parameters error", "error_code": 1}
        if (params.get("login"), params.get("psw")) != (SMSC_LOGIN, SMSC_PASSWORD):
            return 200, {"error": "authorise error", "error_code": 2}
        phones, text = params.get("phones") or "", params.get("mes")
        if not text:
            return 200, {"error": "parameters error", "error_code": 1}
        if not _E164.match(phones):
            return 200, {"error": "invalid number", "error_code": 7, "id": 1}
        self.delivered.append((_plus(phones), text))
        return 200, {"id": len(self.delivered), "cnt": 1}


@pytest.fixture
def telegram_gateway() -> Iterator[TelegramGatewayFake]:
    fake = TelegramGatewayFake().start()
    yield fake
    fake.stop()


@pytest.fixture
def smsru() -> Iterator[SmsRuFake]:
    fake = SmsRuFake().start()
    yield fake
    fake.stop()


@pytest.fixture
def smsc() -> Iterator[SmscFake]:
    fake = SmscFake().start()
    yield fake
    fake.stop()
