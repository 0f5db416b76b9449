"""Request parsing, body cap, logs and metrics under hostile input (the attack's D1–D8, AP5–AP7).

Each test names the defect it keeps fixed; each failed on the code before the fix.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from tests.processes import Server

REGISTER = "/authorization/registration"
LOGIN = "/authorization/login/email"
MARKER = "S3CR3T-MARKER-1f0e"


def port_of(http_server_client) -> int:
    return int(http_server_client.get_url("/").rsplit(":", 1)[1].rstrip("/"))


async def exchange(port: int, data: bytes, *, close_after: bool = False) -> bytes:
    """Send raw bytes; return the one response the server answers (head and body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if close_after:
            return b""
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return head + await asyncio.wait_for(reader.readexactly(length), 5)
    finally:
        writer.close()


async def raw_request(port: int, method: str, path: str) -> bytes:
    return await exchange(port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


# D1: a deeply nested JSON body is a 400, not a RecursionError.
async def test_d1_deeply_nested_json_is_400(api):
    body = '{"a":' + "[" * 30_000
    response = await api.post(REGISTER, body=body, headers={"Content-Type": "application/json"})
    assert (response.status, response.body["error"]) == (400, "invalid_request")
    nested = '{"email": ' + "[" * 40 + "]" * 40 + "}"
    response = await api.post(REGISTER, body=nested, headers={"Content-Type": "application/json"})
    assert (response.status, response.body["error"]) == (400, "invalid_request")


async def test_d1_brackets_inside_strings_do_not_count(api, user):
    body = dict(user, hash_password="[" * 100 + "{" * 100)
    response = await api.post(REGISTER, json_body=body)
    assert response.status == 200


# D1b / AP7: an uncaught exception's log line carries no secret parameter's value.
async def test_d1b_a_500_logs_no_secret_from_the_uri(api, services, caplog, monkeypatch):
    async def broken(token: str) -> dict:
        raise RuntimeError("an unexpected fault")

    monkeypatch.setattr(services.accounts, "refresh", broken)
    caplog.set_level(logging.DEBUG)
    response = await api.get(
        "/validate/jwt/refresh", query={"refresh": MARKER, "hash_password": MARKER}
    )
    assert (response.status, response.body["error"]) == (500, "server_error")
    assert "an unexpected fault" in caplog.text  # the fault is logged, with its traceback
    assert MARKER not in caplog.text


async def test_d1b_tornado_errors_log_no_secret(api, caplog):
    caplog.set_level(logging.DEBUG)
    response = await api.call("PUT", f"/validate/jwt/refresh?refresh={MARKER}", body=b"")
    assert response.status == 405
    response = await api.get(f"/nowhere?client_secret={MARKER}&id_token={MARKER}")
    assert response.status == 404
    assert MARKER not in caplog.text


# D2 / AP5: made-up methods and paths do not add metric series.
async def test_d2_metrics_stay_bounded_under_made_up_methods_and_paths(api, http_server_client):
    async def series() -> int:
        text = (await http_server_client.fetch("/metrics")).body.decode()
        return sum(1 for line in text.splitlines() if line and not line.startswith("#"))

    port = port_of(http_server_client)
    for i in range(5):
        assert (await raw_request(port, f"M{i:05d}", f"/made/up/{i}")).startswith(b"HTTP/1.1 405")
        await raw_request(port, f"M{i:05d}", "/validate/jwt/access")
    await series()  # the scrape's own series exist from here on
    before = await series()
    for i in range(5, 300):
        await raw_request(port, f"M{i:05d}", f"/made/up/{i}")
        await raw_request(port, f"M{i:05d}", "/validate/jwt/access")
    assert await series() == before


# D5: invalid UTF-8 in a form or a query is a 400; no two invalid passwords sign in alike.
@pytest.mark.parametrize(
    "query, body",
    [
        (None, "email=ann%40example.com&hash_password=%ff%ff%ff%ff%ff%ff%ff%ff"),
        ("email=ann%40example.com&hash_password=%fe%fe%fe%fe%fe%fe%fe%fe", None),
        (None, b"email=ann@example.com&hash_password=\xff\xff\xff\xff\xff\xff\xff\xff"),
    ],
)
async def test_d5_invalid_utf8_is_400(api, query, body):
    path = LOGIN if query is None else f"{LOGIN}?{query}"
    response = await api.post(
        path,
        body=body or b"",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (response.status, response.body["error"]) == (400, "invalid_request")


# D6: every over-limit body, chunked or not, gets the JSON 413.
async def test_d6_chunked_body_over_the_cap_is_413_json(http_server_client, config):
    limit = config.server.max_body_bytes
    head = (
        b"POST /authorization/registration HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    port = port_of(http_server_client)
    many = await exchange(port, head + chunked(*[b"x" * 1000] * (limit // 1000 + 2)))
    one = await exchange(port, head + chunked(b"x" * (limit + 4464)))
    for answer in (many, one):
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b'"payload_too_large"' in answer
        assert b"Content-Type: application/json" in answer


async def test_d6_chunked_body_within_the_cap_is_read(http_server_client):
    body = b'{"email": "ann@example.com", "hash_password": "wrong password"}'
    head = (
        b"POST /authorization/login/email HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    answer = await exchange(port_of(http_server_client), head + chunked(body[:10], body[10:]))
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]  # parsed: no such user


# D7: a request whose client drops mid-body, or that was refused, is not left in flight.
async def test_d7_dropped_and_refused_requests_are_not_in_flight(
    http_server_client, services, config
):
    port = port_of(http_server_client)
    await exchange(
        port,
        b"POST /authorization/registration HTTP/1.1\r\nHost: x\r\n"
        b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"email"',
        close_after=True,
    )
    head = b"POST /authorization/registration HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    await exchange(port, head + b"\r\n" + chunked(b"x" * (config.server.max_body_bytes + 1)))
    # The server has seen both connections end once a later request on a new one is answered.
    answer = await exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")
    await asyncio.sleep(0)
    assert services.in_flight == 0


# D8: a body that stalls is cut after server.body_timeout.
def test_d8_a_stalled_body_is_cut_after_the_timeout(tmp_path):
    server = Server(
        tmp_path,
        VHOD_SERVER__BODY_TIMEOUT="1",
        VHOD_PASSWORDS__ALGORITHM="bcrypt",
        VHOD_PASSWORDS__BCRYPT_ROUNDS="4",
    )
    try:
        server.wait_started()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                b"POST /authorization/registration HTTP/1.1\r\nHost: x\r\n"
                b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"email"'
            )
            # Blocks until the server closes; without a body timeout it would raise the
            # socket's own 10 s timeout instead.
            data = sock.recv(1024)
        assert data == b""  # closed, with nothing answered
    finally:
        assert server.stop() == 0
    assert "Timeout reading body" in server.log()


# Issue 15, item 4: a refused origin cannot act; Vary: Origin on every answer.
@pytest.fixture
def config_overrides():
    return {"server.cors_origins": ["https://app.example"]}


async def test_a_foreign_origins_form_post_changes_nothing(api, services, user):
    response = await api.post(REGISTER, form=user, headers={"Origin": "https://evil.example"})
    assert (response.status, response.body["error"]) == (403, "origin_not_allowed")
    assert response.headers.get("Vary") == "Origin"
    assert "Access-Control-Allow-Origin" not in response.headers
    assert await services.store.find_user_by_email(user["email"]) is None
    login = await api.post(LOGIN, form=user, headers={"Origin": "null"})
    assert login.status == 403


async def test_allowed_origin_and_no_origin_still_act(api, user):
    allowed = await api.post(REGISTER, json_body=user, headers={"Origin": "https://app.example"})
    assert allowed.status == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert allowed.headers["Vary"] == "Origin"
    server_to_server = await api.post(LOGIN, json_body=user)
    assert server_to_server.status == 200
    assert server_to_server.headers["Vary"] == "Origin"
    # Reading stays open to any origin: a token check answers, without CORS headers.
    check = await api.get(
        "/validate/jwt/access",
        query={"access": allowed.body["access"]},
        headers={"Origin": "https://evil.example"},
    )
    assert check.body is True and "Access-Control-Allow-Origin" not in check.headers


async def test_a_foreign_origin_cannot_sign_in_through_a_provider_get(api):
    response = await api.get(
        "/vk/login", query={"access_token": "abc"}, headers={"Origin": "https://evil.example"}
    )
    assert (response.status, response.body["error"]) == (403, "origin_not_allowed")
