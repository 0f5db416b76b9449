"""The settings table (core.config.settings): the generated files follow it, every setting is read
from its variable, and every problem of a configuration is one line naming it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import pytest

from core.config import SECTIONS, Config, ConfigError, core_settings, load_config
from core.config.settings import KINDS, POSITIVE, Setting, kinds_of, table
from core.config.settings_docs import generated
from providers import settings as provider_settings
from providers.settings import load_settings
from tests.processes import ROOT, clean_env


def test_config_yaml_and_the_configuration_page_are_generated_from_the_table():
    for path, text in generated().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(ROOT)} drifted from the settings table: "
            "run `python -m core.config.settings_docs`"
        )


def test_the_shipped_config_yaml_holds_the_defaults():
    shipped = load_config(ROOT / "config.yaml", environ={}, required=True)
    for name in SECTIONS:
        assert getattr(shipped, name) == getattr(Config(), name), name


def test_every_field_of_a_section_is_in_the_table():
    # A field added without setting() would be refused as an unknown key in the file.
    for name, cls in SECTIONS.items():
        keys = {field.name.removesuffix("_") for field in dataclasses.fields(cls)}
        assert keys == set(table(cls, name + ".")), name
        assert cls.__doc__, f"{name}: its docstring is the section's help"
    for spec in core_settings():
        assert spec.help and spec.env == "VHOD_" + spec.name.upper().replace(".", "__")


# A value from the environment for each type; what load_config makes of it.
PROBES: dict[Any, tuple[str, Any]] = {
    str: ("probe-value-of-at-least-32-bytes-long", "probe-value-of-at-least-32-bytes-long"),
    int: ("7", 7),
    float: ("0.75", 0.75),
    bool: ("true", True),
    list[str]: ("a, b", ["a", "b"]),
    list[dict[str, Any]]: ("[{type: sender}]", [{"type": "sender"}]),
}


@pytest.mark.parametrize("spec", core_settings(), ids=lambda spec: spec.name)
def test_every_setting_is_read_from_its_variable(spec: Setting):
    section, key = spec.name.split(".")
    attr = table(SECTIONS[section], section + ".")[key][0]
    if spec.type == dict[str, str]:  # one variable per entry: VHOD_ADMIN__KEYS__<NAME>
        config = load_config(None, environ={f"{spec.env}__OPS": "0" * 64})
        assert getattr(getattr(config, section), attr) == {"ops": "0" * 64}
        return
    kind = next(kind for kind in kinds_of(spec.type) if kind in PROBES)
    text, value = PROBES[kind]
    try:
        config = load_config(None, environ={spec.env: text})
    except ConfigError as refused:  # the probe broke a check: the message names the variable
        message = str(refused)
        assert message.startswith(f"{spec.name}: ") and message.endswith(f"(from {spec.env})")
    else:
        assert getattr(getattr(config, section), attr) == value


def test_every_problem_is_one_line_naming_the_setting_and_its_variable(tmp_path):
    path = tmp_path / "vhod.yaml"
    path.write_text("limits:\n  hash_queue: -1\n  nope: 1\n")
    environ = {"VHOD_SERVER__PORT": "eighty", "VHOD_JWT__SECRET": "short"}
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ=environ)
    assert str(refused.value).splitlines() == [
        "server.port: expected int, got str (from VHOD_SERVER__PORT)",
        "jwt.secret: must be at least 32 bytes"
        " (or null, to have one generated into server.data_dir) (from VHOD_JWT__SECRET)",
        "limits.nope: unknown key",
        "limits.hash_queue: must be at least 0",
    ]
    done = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--config", str(path), "--check-config"],
        cwd=tmp_path,
        env=clean_env(**environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines == [
        f"vhod: configuration error: {line}" for line in str(refused.value).splitlines()
    ]
    assert "short" not in done.stderr  # a secret's value is never echoed


def test_rules_across_settings_run_once_each_setting_is_good():
    with pytest.raises(ConfigError) as refused:
        load_config(
            None,
            environ={"VHOD_JWT__ROTATION_INTERVAL": "60", "VHOD_ADMIN__HOST": "127.0.0.2"},
        )
    assert str(refused.value).splitlines() == [
        "jwt.rotation_interval: must be longer than jwt.rotation_lead"
        " (from VHOD_JWT__ROTATION_INTERVAL)",
        "admin.host: needs admin.port (null serves on the main server) (from VHOD_ADMIN__HOST)",
    ]


def test_a_provider_key_from_the_environment_names_its_variable(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--check-config"],
        cwd=tmp_path,
        env=clean_env(VHOD_PROVIDERS__VK__CLIENT_IDD="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "vhod: configuration error: providers.vk.client_idd: unknown key"
        " (from VHOD_PROVIDERS__VK__CLIENT_IDD)"
    ]


def test_providers_declare_their_settings_with_the_same_setting_type():
    assert provider_settings.Setting is Setting
    own = {
        "retries": Setting(int, 3, "tries", check=POSITIVE),
        "region": Setting(str, "eu", "where", ("eu", "us")),
    }
    defaults = {"authorize_url": "https://id.example/a", "token_url": "https://id.example/t"}
    defaults["userinfo_url"] = "https://id.example/u"

    def load(section: dict[str, Any]) -> Any:
        return load_settings("acme", defaults, section, extra=own)

    assert load({}).options == {"retries": 3, "region": "eu"}
    assert load({"retries": 5, "region": " us "}).options == {"retries": 5, "region": "us"}
    with pytest.raises(ValueError, match=r"^providers\.acme\.retries: must be greater than 0$"):
        load({"retries": 0})
    with pytest.raises(ValueError, match=r"^providers\.acme\.retries: expected int, got str$"):
        load({"retries": "5"})
    with pytest.raises(ValueError, match=r"^providers\.acme\.region: expected one of eu, us$"):
        load({"region": "asia"})


def test_every_type_a_setting_may_have_is_known():
    for spec in core_settings():
        assert all(kind in KINDS for kind in kinds_of(spec.type)), spec.name
