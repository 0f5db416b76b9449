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


def test_no_provider_path_is_written_by_hand() -> None:
    """openapi.yaml describes no provider route: the seed's three are generated like every
    plugin's, so their descriptions cannot drift from what the flow does."""
    import yaml

    from handlers.docs import SPEC_PATH, load_spec
    from providers.registry import BUILTIN_PROVIDERS

    written = yaml.safe_load(SPEC_PATH.read_text())["paths"]
    served = load_spec()["paths"]
    for name in ("vk", "mailru", "yandex"):
        prefix = BUILTIN_PROVIDERS[name].prefix
        assert not [path for path in written if path.startswith(f"/{prefix}/")], name
        link = served[f"/{prefix}/link"]["get"]
        assert "vhod_flow" in link["description"] and "redirect=1" in link["description"]
        assert "invalid_state" in served[f"/{prefix}/callback"]["get"]["description"]


async def test_an_unreadable_discovery_answers_as_documented(api: Any) -> None:
    """The 503 of a provider whose discovery cannot be read is the documented one."""
    document = (await api.get("/openapi.json")).body
    answer = await api.get("/acme/link")
    assert answer.status == 503
    schema = document["components"]["schemas"]["ProviderUnusable"]
    assert answer.body["error"] in schema["properties"]["error"]["enum"]
