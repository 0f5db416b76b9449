"""A default configuration points at the providers' 2026 hosts."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    ids = {"client_id": "51234567"}
    return {
        "providers": {"vk": ids, "mailru": ids, "ok": ids},
        "limits.per_ip_per_minute": 1000,
    }


@pytest.mark.parametrize(
    ("prefix", "provider"), [("vk", None), ("mail.ru", "mail_ru"), ("ok", "ok_ru")]
)
async def test_link_on_a_default_configuration_points_at_id_vk_ru(
    api: Any, prefix: str, provider: str | None
) -> None:
    answer = await api.get(f"/{prefix}/link")
    assert answer.status == 200, answer.body
    url = urlsplit(answer.body)
    assert (url.scheme, url.hostname, url.path) == ("https", "id.vk.ru", "/authorize")
    assert parse_qs(url.query).get("provider") == ([provider] if provider else None)
