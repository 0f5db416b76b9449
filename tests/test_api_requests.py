"""Request handling every route shares: 404/405 JSON, body cap (AP1), log redaction (AP3)."""

import asyncio
import logging
import socket

import pytest

REGISTER = "/authorization/registration"


async def test_unknown_path_is_json_404(api):
    for method in ("GET", "POST", "DELETE"):
        response = await api.call(method, "/no/such/path")
        assert (response.status, response.body["error"]) == (404, "not_found")


async def test_wrong_method_is_json_405(api):
    response = await api.get(REGISTER)
    assert (response.status, response.body["error"]) == (405, "method_not_allowed")
    assert response.headers["Allow"] == "POST, OPTIONS"
    response = await api.call("DELETE", "/validate/jwt/access")
    assert (response.status, response.body["error"]) == (405, "method_not_allowed")


async def test_body_that_is_not_json_or_not_an_object(api):
    for body in ("{not json", "[1, 2]", '"text"', "\xff"):
        response = await api.post(
            REGISTER, body=body.encode("latin-1"), headers={"Content-Type": "application/json"}
        )
        assert (response.status, response.body["error"]) == (400, "invalid_request")


async def test_ap1_body_over_the_cap_is_413_json(api, user, config):
    limit = config.server.max_body_bytes
    padding = "x" * (limit - len('{"pad": ""}'))
    exactly = ('{"pad": "' + padding + '"}').encode()
    assert len(exactly) == limit
    response = await api.post(REGISTER, body=exactly, headers={"Content-Type": "application/json"})
    assert response.status == 400  # read and parsed: only the fields are missing
    response = await api.post(
        REGISTER, body=exactly + b" ", headers={"Content-Type": "application/json"}
    )
    assert (response.status, response.body["error"]) == (413, "payload_too_large")


async def test_ap1_refused_from_content_length_before_reading(api, http_server_client):
    """The 413 comes from the header alone: the client has sent no body at all yet."""
    port = int(http_server_client.get_url("/").rsplit(":", 1)[1].rstrip("/"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /authorization/registration HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
        )
        sock.settimeout(5)
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(None, sock.recv, 65536)
    assert data.startswith(b"HTTP/1.1 413"), data[:100]
    assert b'"payload_too_large"' in data


async def test_ap3_no_secret_in_any_log_line(api, user, caplog):
    caplog.set_level(logging.DEBUG)
    tokens = (await api.post(REGISTER, query=user)).body
    await api.get("/validate/jwt/refresh", query={"refresh": tokens["refresh"]})
    await api.get("/validate/jwt/access", query={"access": tokens["access"]})
    await api.post(
        "/authorization/login/email",
        query={"email": user["email"], "hash_password": "wrong-password-123"},
    )
    text = "\n".join(record.getMessage() for record in caplog.records)

    assert "/validate/jwt/refresh" in text  # the access log did write the request
    for secret in (
        tokens["refresh"],
        tokens["access"],
        user["hash_password"],
        "wrong-password-123",
    ):
        assert secret not in text
        assert secret.split(".")[-1] not in text


async def test_health_and_readiness(api):
    assert (await api.get("/healthz")).body == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status == 200 and ready.body["storage"] == "sqlite"


@pytest.mark.parametrize("path", ["/authorization/registration", "/authorization/login/email"])
async def test_token_routes_send_no_store_on_success_only_where_tokens(api, user, path):
    if path.endswith("email"):
        await api.post(REGISTER, json_body=user)
        body = {"email": user["email"], "hash_password": user["hash_password"]}
    else:
        body = user
    response = await api.post(path, json_body=body)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
