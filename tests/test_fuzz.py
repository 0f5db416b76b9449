"""Schemathesis against a live vhod: every operation of the served document, provider routes
included, answers no 5xx and nothing that the document does not allow.

The providers are configured and pointed at the strict fakes (tests/fakes/providers.py),
served from a thread of this process, so that a provider route runs all the way to its
provider call and back instead of stopping at 503 provider_not_configured.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from collections.abc import Iterator

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.domain.admin import new_admin_key
from handlers.docs import load_spec, spec_json
from tests.fakes.channels import SmsInbox, SmtpInbox
from tests.fakes.providers import FakeProviders
from tests.fakes.providers_2026 import Fakes2026
from tests.processes import Server

pytestmark = pytest.mark.slow

OPERATION_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def budget(variable: str, default: int) -> int:
    """A positive count from the environment, for a deeper (or shorter) run than the suite's."""
    value = os.environ.get(variable, "")
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise pytest.UsageError(f"{variable} must be a positive whole number, not {value!r}")
    return int(value)


# Examples per operation: enough that the string strategies reach non-ASCII, control and
# oversized values on every parameter (F1, a non-Latin-1 token, is found within the first 60).
# VHOD_FUZZ_EXAMPLES=500 fuzzes deeper.
EXAMPLES = budget("VHOD_FUZZ_EXAMPLES", 60)
# Scenarios of the stateful run, each up to six linked calls; VHOD_FUZZ_SCENARIOS raises it.
STATEFUL_SCENARIOS = budget("VHOD_FUZZ_SCENARIOS", 150)
ADMIN_KEY, ADMIN_KEY_HASH = new_admin_key()
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
PROVIDER_PATH = re.compile(r"^/(vk|mail\.ru|yandex)/")
# The only 5xx a provider route may answer: its provider is down or answered nonsense.
PROVIDER_5XX = {502: {"provider_unavailable"}}

# The document exactly as /openapi.json serves it (test_openapi.py checks they are the same).
schema = schemathesis.openapi.from_dict(
    json.loads(spec_json()),
    config=schemathesis.Config.from_dict(
        {"generation": {"mode": "all", "deterministic": True, "database": "none"}}
    ),
)


def no_server_error(ctx: object, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """No 5xx, except a provider route's documented 502 when its provider fails."""
    if response.status_code < 500:
        return
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    allowed = (
        PROVIDER_5XX.get(response.status_code, set()) if PROVIDER_PATH.match(case.path) else ()
    )
    assert error in allowed, (
        f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
    )


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fake_providers_in_thread(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FakeProviders]:
    """The fakes (VK ID, Mail.ru, Yandex; Telegram, T-ID, Sber ID in `.more`) on an event loop
    of their own: the fuzzer's calls block this thread."""
    loop = asyncio.new_event_loop()
    started: list[FakeProviders] = []
    ready = threading.Event()
    folder = tmp_path_factory.mktemp("fakes-2026")

    def serve() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            fakes = FakeProviders().start()
            fakes.more = Fakes2026(folder).start()  # type: ignore[attr-defined]
            started.append(fakes)
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=serve, name="fake-providers", daemon=True)
    thread.start()
    assert ready.wait(10), "the fake providers did not start"
    try:
        yield started[0]
    finally:
        asyncio.run_coroutine_threadsafe(started[0].aclose(), loop).result(10)
        asyncio.run_coroutine_threadsafe(started[0].more.aclose(), loop).result(10)  # type: ignore[attr-defined]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module")
def channels() -> Iterator[dict[str, dict[str, object]]]:
    """A real SMTP server and SMS receiver, so the code routes run to their delivery."""
    smtp, sms = SmtpInbox().start(), SmsInbox().start()
    sections: dict[str, dict[str, object]] = {"email": {}, "sms": {}}
    for dotted, value in {**smtp.config(), **sms.config()}.items():
        section, key = dotted.split(".")
        sections[section][key] = value
    try:
        yield sections
    finally:
        smtp.stop()
        sms.stop()


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory,
    fake_providers_in_thread: FakeProviders,
    channels: dict[str, dict[str, object]],
) -> Iterator[str]:
    """vhod in its own process on 127.0.0.1, limits raised so that fuzzing is not throttled."""
    folder = tmp_path_factory.mktemp("fuzz")
    config = folder / "fuzz.yaml"
    settings_ = {
        "passwords": {"algorithm": "bcrypt", "bcrypt_rounds": 4},
        "server": {"data_dir": str(folder / "data")},
        "storage": {"url": f"sqlite:///{folder / 'data' / 'vhod.db'}"},
        "limits": {"per_ip_per_minute": 1000000, "login_failures": 1000000},
        "accounts": {"code_sends_per_hour": 1000000, "code_sends_per_client_per_hour": 1000000},
        "admin": {"keys": {"fuzz": ADMIN_KEY_HASH}, "per_ip_per_minute": 1000000},
        "providers": {
            **fake_providers_in_thread.sections(),
            **fake_providers_in_thread.more.sections(),  # type: ignore[attr-defined]
        },
        **channels,
    }
    # Code sign-in by email and phone, with the budgets against pumping lifted like the limits.
    settings_["accounts"].update(code_sign_up=True, email_code_sign_in=True)
    lifted = ("per_number_per_hour", "per_number_per_day", "per_client_per_hour")
    settings_["sms"].update({key: 1000000 for key in (*lifted, "per_prefix_per_hour")})
    config.write_text(yaml.safe_dump(settings_))
    server = Server(folder, "--config", str(config))
    try:
        server.wait_started()
        yield server.url("")
    finally:
        server.stop()


def test_the_fuzzed_document_has_every_served_operation():
    documented = {
        (method.upper(), path)
        for path, item in load_spec()["paths"].items()
        for method in OPERATION_METHODS
        if method in item
    }
    fuzzed = {
        (result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()
    }
    assert fuzzed == documented
    assert ("GET", "/yandex/login") in fuzzed


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    # Schemathesis filters what it generates and every example is a network round trip:
    # Hypothesis's "too much filtering" and "too slow" warnings are expected here.
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(
    case: schemathesis.Case, live_server: str, request: pytest.FixtureRequest
) -> None:
    # The admin routes get the key, so that their parameters are fuzzed past the key check.
    headers = ADMIN_AUTH if case.path.startswith("/admin/") else None
    case.call_and_validate(base_url=live_server, checks=CHECKS, timeout=15, headers=headers)


# Sequences the document's links allow: sign up or in, then refresh, validate and log out with
# the tokens just issued, which random examples (always invalid tokens) never reach.
token_flows = schema.include(path_regex=r"^/(authorization|validate)/")


def test_token_flows_conform_statefully(live_server: str) -> None:
    class TokenFlows(token_flows.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
            return {"base_url": live_server, "timeout": 15}

        def validate_response(
            self, response: schemathesis.Response, case: schemathesis.Case, **kwargs: object
        ) -> None:
            case.validate_response(response, checks=CHECKS, recorder=self.recorder)

    TokenFlows.run(
        settings=settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=6,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
