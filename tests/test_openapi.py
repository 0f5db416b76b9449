"""openapi.yaml: a valid OpenAPI 3.1 document that describes exactly the routes the app serves."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest
import tornado.web
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from swagger_ui_bundle import swagger_ui_path

from handlers.base import JsonHandler
from handlers.docs import ASSETS, load_spec
from providers import BUILTIN_PROVIDERS
from server import build_services, make_app
from tests.conftest import make_config

OPERATION_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PROVIDER_ROUTES = ("link", "callback", "get/token", "registration", "login")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec()


@pytest.fixture
def builtin_app(io_loop, tmp_path):
    """The app with the built-in providers only, whatever plugins this machine has installed."""
    config = make_config(tmp_path)
    services = io_loop.run_sync(
        lambda: build_services(config, provider_classes=dict(BUILTIN_PROVIDERS))
    )
    yield make_app(services)
    io_loop.run_sync(services.close)


def template(path: str) -> str:
    """`/docs/static/{file}` and `/docs/static/{}` alike: parameter names are the document's."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def served_operations(app: tornado.web.Application) -> set[tuple[str, str]]:
    """(path template, method) for every route and every method its handler implements."""
    served = set()
    for rule in app.wildcard_router.rules:
        matcher, handler = rule.matcher, rule.target
        path = unquote(matcher.reverse(*["{}"] * matcher.regex.groups))
        for method in OPERATION_METHODS:
            implementation = getattr(handler, method, None)
            if implementation in (None, getattr(tornado.web.RequestHandler, method, None)):
                continue
            # The CORS preflight that every JSON route inherits is described once, in
            # info.description; an OPTIONS of a route's own would have to be documented.
            if method == "options" and implementation is JsonHandler.options:
                continue
            served.add((template(path), method))
    return served


def documented_operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (template(path), method)
        for path, item in spec["paths"].items()
        for method in OPERATION_METHODS
        if method in item
    }


def test_the_document_is_valid_openapi_3_1(spec):
    assert spec["openapi"].startswith("3.1.")
    validate(spec, cls=OpenAPIV31SpecValidator)


def test_the_document_describes_exactly_the_served_routes(spec, builtin_app):
    served = served_operations(builtin_app)
    documented = documented_operations(spec)
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"
    # The comparison above is only as good as the route list it saw.
    for prefix in ("vk", "mail.ru", "yandex"):
        for route in PROVIDER_ROUTES:
            assert (f"/{prefix}/{route}", "get") in served
    assert ("/validate/jwt/refresh", "post") in served
    assert ("/metrics", "get") in served


def test_every_operation_has_an_id_a_summary_and_json_errors(spec):
    ids = []
    for path, item in spec["paths"].items():
        for method in OPERATION_METHODS:
            if method not in item:
                continue
            operation = item[method]
            ids.append(operation["operationId"])
            assert operation.get("summary"), (path, method)
            for status, response in operation["responses"].items():
                if "$ref" in response:
                    response = resolve(spec, response["$ref"])
                # Only the static files' 416 (a Range outside the file) has no body at all.
                if int(status) >= 400 and (path, status) != ("/docs/static/{file}", "416"):
                    assert list(response["content"]) == ["application/json"], (path, status)
                    schema = response["content"]["application/json"]["schema"]
                    assert_error_schema(spec, schema, (path, status))
    assert len(ids) == len(set(ids))


def assert_error_schema(spec: dict[str, Any], schema: dict[str, Any], where: object) -> None:
    """A named schema of the Error shape, whose `error` lists its codes: a generator makes a
    type of it (an allOf that narrows `error` is what openapi-python-client drops)."""
    assert set(schema) == {"$ref"}, where
    named = resolve(spec, schema["$ref"])
    assert named["type"] == "object" and named["additionalProperties"] is False, where
    assert named["required"] == ["error", "error_description"], where
    # account_exists alone adds the kinds of sign-in of the account it met (`methods`).
    added = (
        {"methods"} if "account_exists" in named["properties"]["error"].get("enum", []) else set()
    )
    assert set(named["properties"]) == {"error", "error_description", *added}, where
    assert named["properties"]["error_description"] == {
        "$ref": "#/components/schemas/ErrorDescription"
    }, where
    code = named["properties"]["error"]
    assert code["type"] == "string", where
    # Only a provider's own error, passed on by a callback, may carry any code.
    if schema["$ref"] != "#/components/schemas/Error":
        assert code["enum"] and all(isinstance(c, str) for c in code["enum"]), where


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in OPERATION_METHODS:
            if method in item:
                yield path, method, item[method]


# Routes that act for the caller, whose access token is their credential: at least these.
SEED_ERA_ACCOUNT_ROUTES = {
    "/authorization/address/add",
    "/authorization/address/add/confirm",
    "/authorization/password/set",
    "/authorization/password/change",
    "/authorization/verify/email",
    "/authorization/verify/email/confirm",
    "/authorization/verify/phone",
    "/authorization/verify/phone/confirm",
    "/authorization/sessions",
    "/authorization/sessions/revoke",
    "/authorization/account/delete/code",
    "/authorization/account/delete",
}


def account_routes(spec: dict[str, Any]) -> set[str]:
    """The /authorization/ paths with an operation that takes an `access` parameter or field."""
    found = set()
    for path, _method, operation in operations(spec):
        if not path.startswith("/authorization/"):
            continue
        names = {followed(spec, p)["name"] for p in operation.get("parameters", [])}
        body = operation.get("requestBody")
        if body:
            content = followed(spec, body)["content"]["application/json"]["schema"]
            names |= set(followed(spec, content).get("properties", {}))
        if "access" in names:
            found.add(path)
    return found


def test_routes_that_act_for_the_caller_declare_the_bearer_scheme(spec):
    """A generated client sends `Authorization: Bearer` to the account routes (bearerAuth),
    never the token in a URL; the admin routes take the admin key; a token another route
    checks (validate, logout, a provider's) is its parameter, so their `security` is empty."""
    schemes = spec["components"]["securitySchemes"]
    assert set(schemes) == {"adminKey", "bearerAuth"}
    routes = account_routes(spec)
    assert routes >= SEED_ERA_ACCOUNT_ROUTES
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    for path, method, operation in operations(spec):
        if path.startswith("/admin/"):
            expected = [{"adminKey": []}]
        elif path in routes:
            expected = [{"bearerAuth": []}]
        else:
            expected = []
        assert operation["security"] == expected, (path, method)


def test_the_account_routes_do_not_require_the_token_in_the_body_or_url(spec):
    """With the header, `access` is optional wherever it may still come (older clients)."""
    routes = account_routes(spec)
    for path, _method, operation in operations(spec):
        if path not in routes:
            continue
        for parameter in operation.get("parameters", []):
            resolved = followed(spec, parameter)
            assert not (resolved["name"] == "access" and resolved.get("required")), path
        body = operation.get("requestBody")
        if body:
            schema = followed(spec, followed(spec, body)["content"]["application/json"]["schema"])
            assert "access" in schema["properties"], path
            assert "access" not in schema.get("required", []), path


def followed(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = resolve(spec, node["$ref"])
    return node


def test_post_bodies_are_json_and_no_post_takes_query_parameters(spec):
    """A generated client sends JSON and never puts a password or a token in a URL; the
    form body and the query string still work, for older clients (test_api_requests.py)."""
    posts = [(path, operation) for path, method, operation in operations(spec) if method == "post"]
    # The admin actions (disable, enable, sign out, MFA reset) take no body and no query
    # parameter.
    admin = [(path, operation) for path, operation in posts if path.startswith("/admin/")]
    assert len(admin) == 4
    for path, operation in admin:
        assert "requestBody" not in operation and "parameters" not in operation, path
    posts = [(path, operation) for path, operation in posts if (path, operation) not in admin]
    routes = account_routes(spec)
    assert len(posts) == 36
    for path, operation in posts:
        assert "parameters" not in operation, path
        body = operation["requestBody"]
        if "$ref" in body:
            body = resolve(spec, body["$ref"])
        if path == "/authorization/passkeys/login/options":  # takes nothing
            schema = resolve(spec, body["content"]["application/json"]["schema"]["$ref"])
            assert body["required"] is False and schema["maxProperties"] == 0
            continue
        assert list(body["content"]) == ["application/json"], path
        schema = resolve(spec, body["content"]["application/json"]["schema"]["$ref"])
        if path in routes and set(schema["properties"]) == {"access"}:
            # Only the access token, which the bearer header carries: no body needed.
            assert body["required"] is False, path
            continue
        assert body["required"] is True, path
        if path in routes:
            continue  # their `access` is optional (bearerAuth), and may be all they require
        # Either the parameters it requires, or alternatives that each require some.
        assert schema.get("required") or all(alt["required"] for alt in schema["oneOf"]), path


def test_token_responses_declare_no_store_and_limits_declare_retry_after(spec):
    for name in ("TokenPair", "SignedIn", "RecoveryCodes", "Refreshed", "ProviderTokens"):
        headers = spec["components"]["responses"][name]["headers"]
        assert headers["Cache-Control"]["$ref"] == "#/components/headers/CacheControl"
        assert headers["Pragma"]["$ref"] == "#/components/headers/Pragma"
    assert spec["components"]["headers"]["CacheControl"]["schema"] == {"const": "no-store"}
    assert spec["components"]["headers"]["Pragma"]["schema"] == {"const": "no-cache"}
    limited = spec["components"]["responses"]["RateLimited"]["headers"]["Retry-After"]
    assert resolve(spec, limited["$ref"])["required"] is True
    assert "Retry-After" in spec["components"]["responses"]["HashingUnavailable"]["headers"]


def test_the_static_files_listed_are_the_ones_served_and_shipped(spec):
    parameter = spec["paths"]["/docs/static/{file}"]["parameters"][0]
    assert parameter["schema"]["enum"] == list(ASSETS)
    for name in ASSETS:
        assert (swagger_ui_path / name).is_file(), name


async def test_openapi_json_serves_the_yaml_document(api, spec):
    response = await api.get("/openapi.json")
    assert response.status == 200
    assert response.body == spec


def resolve(spec: dict[str, Any], ref: str) -> Any:
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


async def test_every_documented_413_of_a_get_is_answered(spec, http_server_client):
    """GET routes document the 413 that an oversized Content-Length gets before any reading."""
    port = int(http_server_client.get_url("/").rsplit(":", 1)[1].rstrip("/"))
    loop = asyncio.get_running_loop()
    paths = [
        path
        for path, method, operation in operations(spec)
        if method == "get" and "413" in operation["responses"]
    ]
    assert {"/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"} <= set(paths)
    for path in paths:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n".encode()
            )
            data = await loop.run_in_executor(None, sock.recv, 65536)
        assert data.startswith(b"HTTP/1.1 413"), (path, data[:100])
        assert b'"payload_too_large"' in data, path


def test_the_audit_event_schema_lists_what_the_audit_log_keeps(spec):
    from core.domain.audit import DETAIL_KEYS, EVENT_TYPES

    event = spec["components"]["schemas"]["AuditEvent"]["properties"]
    assert set(event["type"]["enum"]) == EVENT_TYPES
    assert set(event["details"]["properties"]) == DETAIL_KEYS
    parameter = spec["components"]["parameters"]["EventType"]["schema"]
    assert set(parameter["enum"]) == EVENT_TYPES
