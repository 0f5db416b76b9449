"""/openapi.json and /docs list every installed provider's routes, generated from the
registry: built-ins, plugins and providers configured with `type: oidc` alike."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from providers.openapi import operation_prefix
from tests.fakes.providers import closed_port_url
from tests.test_openapi import documented_operations, served_operations


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {
        "providers": {
            "acme_id": {
                "type": "oidc",
                "issuer": closed_port_url(),  # never read: the document needs no discovery
                "client_id": "acme-client",
                "client_secret": "s",
                "prefix": "acme",
                "title": "Acme ID",
            },
            "bank": {
                "type": "oauth2",
                "client_id": "t",
                "client_secret": "s",
                "title": "Bank ID",
                "authorize_url": "https://id.tbank.example/auth/authorize",
                "token_url": "https://id.tbank.example/auth/token",
                "userinfo_url": "https://id.tbank.example/userinfo/userinfo",
            },
        }
    }


async def test_configured_providers_are_in_the_served_document(api: Any, app: Any) -> None:
    document = (await api.get("/openapi.json")).body
    validate(document, cls=OpenAPIV31SpecValidator)
    for prefix in ("acme", "bank", "ok", "vk", "telegram", "tid", "sber"):
        for route in ("link", "callback", "get/token", "registration", "login"):
            assert f"/{prefix}/{route}" in document["paths"], (prefix, route)
    tags = {tag["name"] for tag in document["tags"]}
    assert {"Acme ID", "Bank ID", "OK.ru", "Telegram", "T-ID", "Sber ID"} <= tags
    assert document["paths"]["/acme/link"]["get"]["operationId"] == "acmeIdLink"
    assert document["paths"]["/telegram/link"]["get"]["operationId"] == "telegramLink"
    # Exactly what this app serves, no more and no less.
    assert served_operations(app) == documented_operations(document)


def test_operation_ids_read_like_the_seeds() -> None:
    assert [operation_prefix(n) for n in ("vk", "mailru", "op_basic")] == [
        "vk",
        "mailru",
        "opBasic",
    ]


DEVICE_ID = {"$ref": "#/components/parameters/DeviceId"}
OPTIONAL_DEVICE_ID = {"$ref": "#/components/parameters/DeviceIdThroughVkId"}


@pytest.mark.parametrize("name", ["vk", "mailru", "yandex"])
def test_the_generator_matches_the_seeds_hand_written_paths(name: str) -> None:
    """openapi.yaml keeps the seed's three providers as written; the generator makes the
    same operations (ids, tags, parameters, responses) for them, so every other provider is
    described exactly like them."""
    import yaml

    from handlers.docs import SPEC_PATH
    from providers.openapi import provider_path_items
    from providers.registry import BUILTIN_PROVIDERS, build_providers

    written = yaml.safe_load(SPEC_PATH.read_text())["paths"]
    provider = build_providers(BUILTIN_PROVIDERS, {}, public_url="http://127.0.0.1")[name]
    for path, item in provider_path_items(provider).items():
        generated, seed = item["get"], written[path]["get"]
        for key in ("operationId", "tags", "security", "parameters", "responses"):
            expected = seed[key]
            if name == "mailru" and key == "parameters" and path.endswith("/get/token"):
                # Mail.ru takes device_id only through VK ID: optional in the seed's path.
                expected = [DEVICE_ID if p == OPTIONAL_DEVICE_ID else p for p in expected]
            assert generated[key] == expected, (path, key)


async def test_an_unreadable_discovery_answers_as_documented(api: Any) -> None:
    """The 503 of a provider whose discovery cannot be read is the documented one."""
    document = (await api.get("/openapi.json")).body
    answer = await api.get("/acme/link")
    assert answer.status == 503
    schema = document["components"]["schemas"]["ProviderUnusable"]
    assert answer.body["error"] in schema["properties"]["error"]["enum"]
