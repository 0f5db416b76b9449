"""Operating vhod: metrics, request ids, JSON logs, CORS, --check-config."""

import contextlib
import hashlib
import json
import logging
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from core.config import Config, ConfigError, load_config, masked
from core.domain import events
from core.infra.log_writer import LineFormatter
from core.infra.logs import RequestIdFilter
from core.signing import shared_keys
from tests.processes import clean_env, free_port

ROOT = Path(__file__).resolve().parent.parent
REGISTER = "/authorization/registration"
LOGIN_EMAIL = "/authorization/login/email"
ORIGIN = "https://app.example.com"


async def metrics_text(api) -> str:
    response = await api.client.fetch("/metrics", raise_error=False)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.body.decode()


def sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_requests_logins_and_tokens(api, user):
    pair = (await api.post(REGISTER, json_body=user)).body
    for _ in range(2):
        refreshed = await api.get("/validate/jwt/refresh", query={"refresh": pair["refresh"]})
        assert refreshed.status == 200
    await api.post(LOGIN_EMAIL, json_body={"email": user["email"], "hash_password": "wrong one"})
    await api.post(
        LOGIN_EMAIL, json_body={"email": user["email"], "hash_password": user["hash_password"]}
    )
    await api.get("/no/such/thing/" + "x" * 40)
    text = await metrics_text(api)
    assert sample(text, "vhod_http_requests_total", route=REGISTER, status="200") == 1
    assert sample(text, "vhod_logins_total", method="email", outcome="failure") == 1
    assert sample(text, "vhod_logins_total", method="email", outcome="success") == 1
    assert sample(text, "vhod_tokens_issued_total", kind="access_token") == 4  # 2 refreshes
    assert sample(text, "vhod_tokens_refreshed_total", rotated="false") == 2
    assert sample(text, "vhod_tokens_issued_total", kind="refresh_token") == 2
    assert sample(text, "vhod_http_request_duration_seconds_count", route=LOGIN_EMAIL) == 2
    assert sample(text, "vhod_http_requests_total", route="unmatched", status="404") == 1
    assert "vhod_hash_queue_depth 0.0" in text
    # No label carries an identifier, a token or an address.
    for leak in (user["email"], "127.0.0.1", "x" * 40, "+7916"):
        assert leak not in text


async def test_metrics_show_process_storage_signing_key_and_deliveries(
    tmp_path, backend_url, smtp_inbox, user
):
    """After a sign-up, on both stores: the standard process_* and python_* collectors, the
    time of each store call by operation, the signing key's age and time to rotation, and
    the verification email counted as sent on its channel."""
    from tornado.httpclient import AsyncHTTPClient

    from storage.timing import OPERATIONS
    from tests.storage_fixtures import running_app

    settings = {
        **smtp_inbox.config(),
        "accounts.require_verified_email": True,  # a sign-up sends its first code
        "jwt.secret": None,
        "jwt.algorithm": "ES256",
        "jwt.key_encryption_key": "k" * 40,
    }
    async with running_app(tmp_path, backend_url, **settings) as app:
        status, body = await app.call("POST", REGISTER, user)
        assert status == 200, body
        assert smtp_inbox.to(user["email"])  # the first verification code went out
        text = (await AsyncHTTPClient().fetch(app.url("/metrics"))).body.decode()
        interval = app.services.config.jwt.rotation_interval
    assert sample(text, "process_resident_memory_bytes") > 0
    assert sample(text, "process_cpu_seconds_total") > 0
    assert sample(text, "python_info", implementation="CPython") == 1
    assert "python_gc_objects_collected_total{" in text
    duration = "vhod_storage_call_duration_seconds"
    assert sample(text, duration + "_count", operation="create_user") == 1
    assert sample(text, duration + "_count", operation="list_signing_keys") >= 1
    assert sample(text, duration + "_bucket", operation="create_user", le="+Inf") == 1
    seen = {
        line.split('operation="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith(duration + "_count{")
    }
    assert seen <= set(OPERATIONS)
    # The first key signs from its creation: its age and the time left add up to the interval.
    age = sample(text, "vhod_signing_key_age_seconds")
    rotation = sample(text, "vhod_signing_key_rotation_in_seconds")
    assert 0 <= age < rotation and age + rotation == pytest.approx(interval)
    assert sample(text, "vhod_deliveries_total", channel="email", outcome="sent") == 1
    assert 'vhod_deliveries_total{channel="email",outcome="failed"} 0.0' in text
    assert 'channel="phone"' not in text  # no SMS channel configured: no label for it


@pytest.mark.parametrize("config_overrides", [{"jwt.secret": None}])
async def test_signing_key_metrics_follow_the_rotation_schedule(services, clock, config_overrides):
    """Age and time to rotation: from the first key, through a successor waiting to sign,
    to the successor signing; an HMAC-signing instance has neither."""
    keys, policy = services.keys, services.keys.policy

    def gauges() -> tuple[float, float]:
        text = services.metrics.render().decode()
        return (
            sample(text, "vhod_signing_key_age_seconds"),
            sample(text, "vhod_signing_key_rotation_in_seconds"),
        )

    assert gauges() == (0, policy.interval)
    clock.advance(policy.interval - policy.lead + 5)  # the successor is due: published now
    assert await keys.rotate_if_due()
    assert gauges() == (policy.interval - policy.lead + 5, policy.lead)
    clock.advance(policy.lead + 7)  # it signs
    await keys.refresh()
    assert gauges() == (7, policy.interval - 7)


async def test_an_hmac_secret_has_no_signing_key_metrics(api):
    text = await metrics_text(api)
    assert "# TYPE vhod_signing_key_age_seconds gauge" in text  # described, with no value
    assert not [line for line in text.splitlines() if line.startswith("vhod_signing_key")]


async def test_deliveries_are_counted_as_sent_refused_or_failed(sms_inbox):
    """A gateway that answers with an error refused the message; one that cannot be
    reached failed it; both answer 502 delivery_failed and are counted apart."""
    from core.config.lifecycle_settings import EmailConfig, SmsConfig
    from core.domain.errors import ApiError
    from core.infra.delivery import Delivery
    from tests.processes import free_port

    seen: list[tuple[str, str]] = []
    settings = {key.removeprefix("sms."): value for key, value in sms_inbox.config().items()}
    delivery = Delivery(EmailConfig(), SmsConfig(**settings), on_delivery=lambda *c: seen.append(c))
    assert delivery.channels == ["http"]  # sms.sender, by its name
    await delivery.send_code("phone", "+79161234567", "verify", "123456", 10)
    sms_inbox.mode = "down"
    with pytest.raises(ApiError) as refused:
        await delivery.send_code("phone", "+79161234567", "verify", "123456", 10)
    dead = SmsConfig(**{**settings, "url": f"http://127.0.0.1:{free_port()}/send"})
    unreachable = Delivery(EmailConfig(), dead, on_delivery=lambda *c: seen.append(c))
    with pytest.raises(ApiError) as failed:
        await unreachable.send_code("phone", "+79161234567", "verify", "123456", 10)
    assert refused.value.code == failed.value.code == "delivery_failed"
    assert seen == [("http", "sent"), ("http", "refused"), ("http", "failed")]


@pytest.mark.parametrize("config_overrides", [{"metrics.enabled": False}])
async def test_metrics_can_be_switched_off(api, config_overrides):
    assert (await api.get("/metrics")).status == 404


async def test_request_id_is_taken_or_made_and_echoed(api):
    given = await api.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert given.headers["X-Request-Id"] == "abc-123"
    made = await api.get("/healthz")
    assert len(made.headers["X-Request-Id"]) == 32
    hostile = await api.get("/healthz", headers={"X-Request-Id": "a b<script>"})
    assert hostile.headers["X-Request-Id"] != "a b<script>"
    error = await api.get("/nope", headers={"X-Request-Id": "err-1"})
    assert error.status == 404 and error.headers["X-Request-Id"] == "err-1"


async def test_access_log_line_carries_request_fields(api, caplog):
    caplog.set_level(logging.INFO, logger="vhod.access")
    await api.get(
        "/validate/jwt/access",
        query={"access": "secret.token.value"},
        headers={"X-Request-Id": "req-42"},
    )
    record = next(r for r in caplog.records if r.name == "vhod.access")
    assert (record.request_id, record.method, record.route, record.status) == (
        "req-42",
        "GET",
        "/validate/jwt/access",
        200,
    )
    assert record.duration_ms >= 0
    formatter = LineFormatter("json")
    line = json.loads(formatter.format(record))
    assert line["request_id"] == "req-42" and line["route"] == "/validate/jwt/access"
    assert "secret.token.value" not in formatter.format(record)


def test_json_formatter_includes_request_id_outside_requests():
    record = logging.makeLogRecord(
        {"msg": "hello %s", "args": ("world",), "levelno": 20, "levelname": "INFO", "name": "vhod"}
    )
    RequestIdFilter().filter(record)
    line = json.loads(LineFormatter("json").format(record))
    assert line["message"] == "hello world" and line["request_id"] == "-"
    assert line["level"] == "info" and line["time"].endswith("Z")


@pytest.mark.parametrize("config_overrides", [{"server.cors_origins": [ORIGIN]}])
async def test_cors_for_a_configured_origin(api, user, config_overrides):
    preflight = await api.call(
        "OPTIONS",
        REGISTER,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    response = await api.post(REGISTER, json_body=user, headers={"Origin": ORIGIN})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in response.headers["Vary"]
    error = await api.post(REGISTER, json_body={}, headers={"Origin": ORIGIN})
    assert error.headers["Access-Control-Allow-Origin"] == ORIGIN  # errors are readable too


# As an operator writes it: a browser sends `Origin: https://app.example.com`, never these.
@pytest.mark.parametrize(
    "config_overrides",
    [
        {"server.cors_origins": ["https://App.Example.com/"]},
        {"server.cors_origins": [ORIGIN + ":443"]},
    ],
)
async def test_a_configured_origin_is_compared_as_browsers_send_it(api, user, config_overrides):
    response = await api.post(REGISTER, json_body=user, headers={"Origin": ORIGIN})
    assert response.status == 200, response.body
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


@pytest.mark.parametrize("config_overrides", [{"server.cors_origins": [ORIGIN]}])
async def test_cors_unknown_origin_gets_no_headers(api, config_overrides):
    for origin in ("https://evil.example", ORIGIN + ".evil.example", "null"):
        preflight = await api.call(
            "OPTIONS",
            REGISTER,
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )
        assert "Access-Control-Allow-Origin" not in preflight.headers
        response = await api.get("/healthz", headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in response.headers
    star = await api.get("/healthz", headers={"Origin": ORIGIN})
    assert star.headers["Access-Control-Allow-Origin"] != "*"


def run_check_config(tmp_path, *extra, env=None):
    import os

    environ = {k: v for k, v in os.environ.items() if not k.startswith("VHOD_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--check-config", *extra],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_check_config_prints_the_effective_config_with_secrets_masked(tmp_path):
    result = run_check_config(
        tmp_path,
        "--config",
        str(ROOT / "config.yaml"),
        env={
            "VHOD_JWT__SECRET": "super-secret-value-that-is-32-bytes-long",
            "VHOD_PROVIDERS__YANDEX__CLIENT_SECRET": "yandex-client-secret",
            "VHOD_STORAGE__URL": "mongodb://vhod:db-password@db:27017/vhod",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "bcrypt_rounds: 12" in result.stdout
    for secret in ("super-secret-value", "yandex-client-secret", "db-password"):
        assert secret not in result.stdout + result.stderr
    assert "secret: '***'" in result.stdout


def configuration_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("vhod: configuration error")]


def test_check_config_refuses_mongodb_without_a_kek_as_the_start_does(tmp_path):
    # Nothing listens there: the start refuses before it connects, and so must the check.
    env = {"VHOD_STORAGE__URL": "mongodb://127.0.0.1:9/vhod"}
    check = run_check_config(tmp_path, env=env)
    assert check.returncode == 2, check.stdout + check.stderr
    assert "configuration OK" not in check.stderr
    start = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--port", str(free_port())],
        cwd=tmp_path,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert start.returncode == 2, start.stderr
    line = configuration_errors(start.stderr)
    assert len(line) == 1 and "jwt.key_encryption_key" in line[0]
    assert configuration_errors(check.stderr) == line  # the same one line
    assert "Traceback" not in check.stderr
    assert list(tmp_path.iterdir()) == []  # the check generated no key file


def test_check_config_normalises_cors_origins(tmp_path):
    origins = "https://App.Example.com/, https://app.example.com:443, http://localhost:3000/"
    result = run_check_config(tmp_path, env={"VHOD_SERVER__CORS_ORIGINS": origins})
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)["server"]["cors_origins"]
    assert shown == [ORIGIN, "http://localhost:3000"]


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com/login",
        "https://app.example.com/?next=1",
        "https://*.example.com",
        "app.example.com",
        "ftp://app.example.com",
    ],
)
def test_check_config_refuses_what_is_no_origin_in_one_line(tmp_path, origin):
    result = run_check_config(tmp_path, env={"VHOD_SERVER__CORS_ORIGINS": origin})
    assert result.returncode == 2
    errors = configuration_errors(result.stderr)
    assert len(errors) == 1 and "server.cors_origins" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_an_origin_with_credentials_is_refused_without_echoing_them(tmp_path):
    result = run_check_config(
        tmp_path, env={"VHOD_SERVER__CORS_ORIGINS": "https://user:hunter2@app.example.com"}
    )
    assert result.returncode == 2 and "server.cors_origins" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


@pytest.mark.parametrize("which", ["server", "admin"])
def test_a_busy_port_stops_the_start_with_one_line(tmp_path, which):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {"VHOD_JWT__SECRET": "s" * 32, "VHOD_PASSWORDS__BCRYPT_ROUNDS": "4"}
        main_port = port if which == "server" else free_port()
        if which == "admin":
            env.update(VHOD_ADMIN__PORT=str(port), VHOD_ADMIN__KEYS__OPS="0" * 64)
        result = subprocess.run(
            [sys.executable, str(ROOT / "server.py"), "--port", str(main_port)],
            cwd=tmp_path,
            env=clean_env(**env),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"vhod: cannot listen on 127.0.0.1:{port}: address already in use"
    )
    assert not (tmp_path / "data" / "vhod.db").exists()  # refused before the store opened


def test_check_config_names_a_bad_key(tmp_path):
    result = run_check_config(tmp_path, env={"VHOD_PROVIDERS__VK__CLIENT_IDD": "1"})
    assert result.returncode == 2
    assert "providers.vk.client_idd" in result.stderr
    result = run_check_config(tmp_path, env={"VHOD_SERVER__TRUSTED_PROXIES": "not-an-ip"})
    assert result.returncode == 2 and "server.trusted_proxies" in result.stderr


# The reported case, and one with every character that ends a part of a URL (test_config.py
# has each on its own). Written as they are, the driver refuses them, at the start and so in
# the check; percent-escaped, they are good URLs. Neither way is the password printed.
@pytest.mark.parametrize("password", ["pa/ss", "p:a/s@s?x#y"])
def test_check_config_masks_url_passwords_whatever_they_contain(tmp_path, password):
    kek = "k" * 32  # the start requires one with MongoDB, and so does the check
    raw = f"mongodb://admin:{password}@db.example:27017/vhod"
    result = run_check_config(
        tmp_path, env={"VHOD_STORAGE__URL": raw, "VHOD_JWT__KEY_ENCRYPTION_KEY": kek}
    )
    assert result.returncode == 2 and "storage.url" in result.stderr
    assert password not in result.stdout + result.stderr
    escaped = f"mongodb://admin:{quote(password, safe='')}@db.example:27017/vhod"
    result = run_check_config(
        tmp_path, env={"VHOD_STORAGE__URL": escaped, "VHOD_JWT__KEY_ENCRYPTION_KEY": kek}
    )
    assert result.returncode == 0, result.stderr
    assert "url: mongodb://admin:***@db.example:27017/vhod" in result.stdout
    assert password not in result.stdout + result.stderr
    assert quote(password, safe="") not in result.stdout + result.stderr


@pytest.fixture
def restore_pseudonym_key():
    saved = events._pseudonym_key
    yield
    events.set_pseudonym_key(saved)


def test_identifier_pseudonyms_are_keyed(restore_pseudonym_key):
    phone = "+79161234567"
    events.set_pseudonym_key(b"k" * 32)
    first = events.identifier_hash(phone)
    assert first == events.identifier_hash(phone) and len(first) == 24
    # Not the bare SHA-256 anyone could compute for every phone number.
    assert first != hashlib.sha256(phone.encode()).hexdigest()[:24]
    events.set_pseudonym_key(b"j" * 32)
    assert events.identifier_hash(phone) != first


def shared_settings(tmp_path: Path, **settings: str) -> Config:
    return load_config(
        None, environ={}, overrides={"server.data_dir": str(tmp_path / "data"), **settings}
    )


def test_pseudonym_key_comes_from_the_configuration(tmp_path):
    dedicated = shared_keys.pseudonym_key(
        shared_settings(tmp_path, **{"logging.pseudonym_key": "p" * 32, "jwt.secret": "s" * 40})
    )
    assert dedicated == (b"p" * 32, "logging.pseudonym_key")
    derived, source = shared_keys.pseudonym_key(
        shared_settings(tmp_path, **{"jwt.secret": "s" * 40})
    )
    elsewhere = shared_settings(tmp_path / "elsewhere", **{"jwt.secret": "s" * 40})
    assert (derived, source) == (shared_keys.pseudonym_key(elsewhere)[0], "jwt.secret")
    other = shared_settings(tmp_path, **{"jwt.secret": "t" * 40})
    assert derived not in (b"s" * 40, shared_keys.pseudonym_key(other)[0])
    # MongoDB: from the key-encryption key every instance has, whatever its data_dir.
    mongo = {"storage.url": "mongodb://db.example/vhod", "jwt.key_encryption_key": "k" * 32}
    from_kek, source = shared_keys.pseudonym_key(shared_settings(tmp_path, **mongo))
    assert source == "jwt.key_encryption_key" and from_kek != b"k" * 32
    assert from_kek == shared_keys.pseudonym_key(shared_settings(tmp_path / "b", **mongo))[0]
    assert not list(tmp_path.iterdir())  # none of these wrote a file
    # SQLite: generated once beside the database, which every process on it shares.
    database = f"sqlite:///{tmp_path / 'shared' / 'vhod.db'}"
    generated, source = shared_keys.pseudonym_key(
        shared_settings(tmp_path / "a", **{"storage.url": database})
    )
    again = shared_keys.pseudonym_key(shared_settings(tmp_path / "b", **{"storage.url": database}))
    key_file = tmp_path / "shared" / events.PSEUDONYM_KEY_FILE
    assert again == (generated, str(key_file))
    assert key_file.read_bytes() == generated and len(generated) == 64
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_an_unused_pseudonym_key_file_is_named_at_start(tmp_path):
    # An upgraded MongoDB instance had generated its own key into data_dir: no longer read.
    mongo = {"storage.url": "mongodb://db.example/vhod", "jwt.key_encryption_key": "k" * 32}
    config = shared_settings(tmp_path, **mongo)
    assert shared_keys.shared_keys(config).note is None
    events.load_or_create_key_file(tmp_path / "data" / events.PSEUDONYM_KEY_FILE)
    note = shared_keys.shared_keys(config).note
    assert note is not None and "logging.pseudonym_key" in note and "start afresh" in note
    # The default SQLite install keeps using the file where it is.
    sqlite = shared_settings(tmp_path, **{"storage.url": f"sqlite:///{tmp_path}/data/vhod.db"})
    keys = shared_keys.shared_keys(sqlite)
    assert keys.note is None
    assert keys.pseudonyms == (tmp_path / "data" / events.PSEUDONYM_KEY_FILE).read_bytes()


def test_processes_starting_together_agree_on_the_generated_key(tmp_path):
    path = tmp_path / "data" / events.PSEUDONYM_KEY_FILE
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from core.domain.events import load_or_create_key_file\n"
        "go = Path(sys.argv[2])\n"
        "while not go.exists(): time.sleep(0.001)\n"
        "print(load_or_create_key_file(Path(sys.argv[1])).decode())\n"
    )
    go = tmp_path / "go"
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    go.touch()
    keys = {start.communicate(timeout=30)[0].strip() for start in starts}
    assert keys == {path.read_text()}
    assert [p.name for p in path.parent.iterdir()] == [events.PSEUDONYM_KEY_FILE]  # no temp left


def test_a_short_pseudonym_key_is_refused():
    with pytest.raises(ConfigError, match=r"logging\.pseudonym_key"):
        load_config(None, environ={"VHOD_LOGGING__PSEUDONYM_KEY": "short"})
    config = load_config(None, environ={"VHOD_LOGGING__PSEUDONYM_KEY": "q" * 32})
    assert "q" * 32 not in str(masked(config))


def test_a_login_reports_its_outcome_where_it_is_decided():
    """Login metrics come from the service that knows the outcome, not from HTTP statuses."""
    from core.domain.accounts import Accounts
    from core.domain.errors import ApiError, invalid_credentials
    from core.domain.revocations import RevokedSessions
    from storage.base import StorageUnavailable

    seen: list[tuple[str, str]] = []
    accounts = Accounts(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        on_login=lambda m, o: seen.append((m, o)),
        revoked=RevokedSessions(None, access_ttl=0),  # type: ignore[arg-type]
    )
    for method, error in (
        ("email", None),
        ("phone", invalid_credentials()),
        ("vk", ApiError(429, "rate_limited", "Too many.")),
        ("yandex", StorageUnavailable("down")),
    ):
        with contextlib.suppress(ApiError, StorageUnavailable), accounts.counted_login(method):
            if error is not None:
                raise error
    assert seen == [
        ("email", "success"),
        ("phone", "failure"),
        ("vk", "rate_limited"),
        ("yandex", "unavailable"),
    ]


def test_request_latency_buckets_count_each_answer_in_the_first_bound_it_fits():
    from core.infra.metrics import Metrics

    metrics = Metrics()
    for seconds in (0.0004, 0.001, 0.004, 20.0):
        metrics.observe_request("/healthz", "GET", 200, seconds)
    metrics.observe_request("/healthz", "GET", 503, 0.002)
    text = metrics.render().decode()

    def bucket(le: str) -> float:
        return sample(text, "vhod_http_request_duration_seconds_bucket", route="/healthz", le=le)

    assert (bucket("0.001"), bucket("0.0025"), bucket("0.005"), bucket("10.0")) == (2, 3, 4, 4)
    assert bucket("+Inf") == 5
    assert sample(text, "vhod_http_request_duration_seconds_count", route="/healthz") == 5
    total = sample(text, "vhod_http_request_duration_seconds_sum", route="/healthz")
    assert total == pytest.approx(20.0074)
    assert sample(text, "vhod_http_requests_total", route="/healthz", status="200") == 4
    assert sample(text, "vhod_http_requests_total", route="/healthz", status="503") == 1


async def test_only_public_documents_carry_an_etag(api, user):
    pair = (await api.post(REGISTER, json_body=user)).body
    check = await api.get("/validate/jwt/access", query={"access": pair["access"]})
    assert check.status == 200 and "Etag" not in check.headers
    # Tornado would answer 304 and no body to a matching If-None-Match on any GET with an
    # ETag; a token check must always answer true or false.
    again = await api.get(
        "/validate/jwt/access",
        query={"access": pair["access"]},
        headers={"If-None-Match": '"*"', "If-Modified-Since": "Tue, 01 Dec 2099 00:00:00 GMT"},
    )
    assert again.status == 200 and again.body is True
    jwks = await api.get("/.well-known/jwks.json")
    assert jwks.headers["Etag"]
    unchanged = await api.client.fetch(
        "/.well-known/jwks.json", headers={"If-None-Match": jwks.headers["Etag"]}, raise_error=False
    )
    assert unchanged.code == 304


async def test_store_calls_are_timed_once_per_call_however_often_a_store_is_timed(store):
    """Failed calls count too; timing a store again replaces the observer, never stacks;
    the store stays the object it was."""
    from storage import StorageUnavailable
    from storage.timing import time_calls

    kind = type(store)

    async def broken() -> None:
        raise StorageUnavailable("down")

    store.ping = broken
    first: list[str] = []
    second: list[tuple[str, float]] = []
    time_calls(store, lambda operation, seconds: first.append(operation))
    time_calls(store, lambda operation, seconds: second.append((operation, seconds)))
    assert await store.get_user("nobody") is None
    with pytest.raises(StorageUnavailable):
        await store.ping()
    assert first == []
    assert [operation for operation, _ in second] == ["get_user", "ping"]
    assert all(seconds >= 0 for _, seconds in second)
    assert type(store) is kind
