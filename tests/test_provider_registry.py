"""Provider discovery (built-ins plus `vhod.providers` entry points) and configuration."""

from __future__ import annotations

from importlib import metadata
from typing import Any

import pytest

from providers.base import OAuthProvider, Profile
from providers.registry import (
    BUILTIN_PROVIDERS,
    ENTRY_POINT_GROUP,
    ProviderRegistryError,
    build_providers,
    by_prefix,
    discover_providers,
)


class KukuProvider(OAuthProvider):
    name = "kuku"
    prefix = "kuku"
    title = "Kuku"
    default_authorize_url = "https://kuku.example/authorize"
    default_token_url = "https://kuku.example/token"
    default_userinfo_url = "https://kuku.example/me"

    def to_profile(self, userinfo: dict[str, Any]) -> Profile:
        return Profile(provider=self.name, subject=str(userinfo["sub"]))


class SecondVK(KukuProvider):
    name = "vk"
    prefix = "vk2"


class SecondMailRuPrefix(KukuProvider):
    name = "mailru2"
    prefix = "mail.ru"


class ShadowsServerRoutes(KukuProvider):
    name = "shadow"
    prefix = "authorization"


class NoMapping(OAuthProvider):
    name = "nomap"
    prefix = "nomap"
    title = "No mapping"
    default_authorize_url = "https://nomap.example/authorize"
    default_token_url = "https://nomap.example/token"
    default_userinfo_url = "https://nomap.example/me"


def not_a_provider() -> None:
    return None


def entry(name: str, target: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=f"{__name__}:{target}", group=ENTRY_POINT_GROUP)


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> list[metadata.EntryPoint]:
    """The entry points registry.py will see; empty unless a test adds some."""
    points: list[metadata.EntryPoint] = []

    def fake_entry_points(*, group: str) -> list[metadata.EntryPoint]:
        assert group == ENTRY_POINT_GROUP
        return list(points)

    monkeypatch.setattr(metadata, "entry_points", fake_entry_points)
    return points


def test_builtins_are_found(installed: list[metadata.EntryPoint]) -> None:
    found = discover_providers()
    assert found == BUILTIN_PROVIDERS
    assert {name: cls.prefix for name, cls in found.items()} == {
        "vk": "vk",
        "mailru": "mail.ru",
        "yandex": "yandex",
        "ok": "ok",
        "telegram": "telegram",
        "tid": "tid",
        "sber": "sber",
    }


def test_real_entry_points_are_read_without_error() -> None:
    assert set(BUILTIN_PROVIDERS) <= set(discover_providers())


def test_an_entry_point_adds_a_provider(installed: list[metadata.EntryPoint]) -> None:
    installed.append(entry("kuku", "KukuProvider"))
    found = discover_providers()
    assert found["kuku"] is KukuProvider
    assert set(found) == {"vk", "mailru", "yandex", "ok", "telegram", "tid", "sber", "kuku"}


def test_duplicate_name_names_both_sources(installed: list[metadata.EntryPoint]) -> None:
    installed.append(entry("vk", "SecondVK"))
    with pytest.raises(ProviderRegistryError) as caught:
        discover_providers()
    message = str(caught.value)
    assert "'vk' is declared twice" in message
    assert "built-in providers.vk.VKProvider" in message
    assert f"entry point vk = {__name__}:SecondVK" in message


def test_duplicate_prefix_names_both_sources(installed: list[metadata.EntryPoint]) -> None:
    installed.append(entry("mailru2", "SecondMailRuPrefix"))
    with pytest.raises(ProviderRegistryError) as caught:
        discover_providers()
    message = str(caught.value)
    assert "/mail.ru/ is declared twice" in message
    assert "built-in providers.mailru.MailRuProvider" in message
    assert "SecondMailRuPrefix" in message


def test_two_plugins_with_one_name_clash(installed: list[metadata.EntryPoint]) -> None:
    installed.extend([entry("kuku", "KukuProvider"), entry("kuku", "KukuProvider")])
    with pytest.raises(ProviderRegistryError, match="'kuku' is declared twice"):
        discover_providers()


@pytest.mark.parametrize(
    ("point", "message"),
    [
        (("nap", "not_a_provider"), "is not a subclass of providers.base.OAuthProvider"),
        (("missing", "NoSuchClass"), "cannot be loaded"),
        (("other", "KukuProvider"), "must equal the class's name 'kuku'"),
        (("shadow", "ShadowsServerRoutes"), "prefix 'authorization' is a route of the server"),
        (("nomap", "NoMapping"), "to_profile is not implemented"),
    ],
)
def test_bad_entry_points_are_refused_with_their_source(
    installed: list[metadata.EntryPoint], point: tuple[str, str], message: str
) -> None:
    installed.append(entry(*point))
    with pytest.raises(ProviderRegistryError) as caught:
        discover_providers()
    assert message in str(caught.value)
    assert f"entry point {point[0]} = {__name__}:{point[1]}" in str(caught.value)


def test_a_plugin_that_fails_to_import_is_named(installed: list[metadata.EntryPoint]) -> None:
    installed.append(
        metadata.EntryPoint(name="gone", value="no_such_module_xyz:Gone", group=ENTRY_POINT_GROUP)
    )
    with pytest.raises(ProviderRegistryError, match="entry point gone = no_such_module_xyz:Gone"):
        discover_providers()


# ---- build_providers ----------------------------------------------------------------------


def build(sections: dict[str, Any] | None) -> dict[str, OAuthProvider]:
    return build_providers(
        BUILTIN_PROVIDERS,
        sections,
        public_url="http://127.0.0.1:8888",
        connect_timeout=1,
        request_timeout=2,
    )


def test_build_configures_each_provider_from_its_section() -> None:
    providers = build({"vk": {"client_id": "51234567"}, "yandex": None})
    assert set(providers) == {"vk", "mailru", "yandex", "ok", "telegram", "tid", "sber"}
    assert providers["vk"].configured and providers["vk"].settings.client_id == "51234567"
    assert not providers["mailru"].configured and not providers["yandex"].configured
    assert providers["vk"].request_timeout == 2 and providers["vk"].connect_timeout == 1
    assert providers["mailru"].redirect_uri == "http://127.0.0.1:8888/mail.ru/callback"


def test_unknown_provider_in_config_is_named() -> None:
    with pytest.raises(ValueError, match=r"^providers\.vkontakte: unknown provider"):
        build({"vkontakte": {"client_id": "1"}})


def test_bad_key_in_a_section_is_named() -> None:
    with pytest.raises(ValueError, match=r"^providers\.mailru\.secret: unknown key$"):
        build({"mailru": {"secret": "x"}})


def test_by_prefix() -> None:
    providers = build(None)
    routes = by_prefix(providers)
    assert set(routes) == {"vk", "mail.ru", "yandex", "ok", "telegram", "tid", "sber"}
    assert routes["mail.ru"] is providers["mailru"]


class UnknownCheck(KukuProvider):
    name, prefix = "unknown_check", "unknown-check"
    token_check = "trust_me"


def test_a_plugin_cannot_skip_the_token_check(installed: list[metadata.EntryPoint]) -> None:
    """The old hook that a plugin could make `return True` is refused at class creation,
    and the declared check must be one the base runs."""
    with pytest.raises(TypeError, match="token_belongs_to_us"):

        class Skipping(KukuProvider):
            def token_belongs_to_us(self, userinfo: dict[str, Any]) -> bool:
                return True

    installed.append(entry("unknown_check", "UnknownCheck"))
    with pytest.raises(ProviderRegistryError, match="token_check 'trust_me' must be one of"):
        discover_providers()


def test_check_config_lists_every_installed_providers_keys() -> None:
    import subprocess
    import sys

    from tests.processes import ROOT, clean_env

    done = subprocess.run(
        [sys.executable, "server.py", "--check-config"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for line in (
        "#   client_id: the application's id at the provider",
        "# providers.vk also takes:",
        "#   host (str, default 'id.vk.ru')",
        "#   mode (vkid|legacy, default 'vkid')",
        "#   client_auth (client_secret_basic|client_secret_post|none",
    ):
        assert line in done.stdout, line
