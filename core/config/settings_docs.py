"""Writes `config.yaml` (the defaults, commented) and docs/configuration.md from the settings
table: `python -m core.config.settings_docs` rewrites both, `--check` says whether they drifted.

Run it after adding or changing a setting; tests/test_settings_table.py fails until then.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from core.config import RULES, SECTIONS
from core.config.settings import Setting, settings_of, type_name

ROOT = Path(__file__).resolve().parents[2]
COMMENT_COLUMN = 38
WIDTH = 100
# (name, what it is, its settings with that provider's defaults), from providers.registry.
ProviderSection = tuple[str, str, list[Setting]]

YAML_HEADER = """\
# vhod settings: every key with its default. This file is generated from the settings
# table by `python -m core.config.settings_docs` (docs/configuration.md says more): change a copy
# of it (--config PATH), or override keys with the environment.
# Every key can be overridden by an environment variable: VHOD_ + the key path in upper
# case joined by "__", e.g. VHOD_JWT__SECRET, VHOD_STORAGE__URL,
# VHOD_PROVIDERS__VK__CLIENT_ID. An unknown key or a wrong type stops startup, naming the key.
"""
GENERIC_EXAMPLE = """\
  # Any OpenID Connect provider, by configuration (docs/configuration.md: "Any OpenID
  # Connect or OAuth 2.0 provider"); uncomment and fill in.
  # acme:
  #   type: oidc                      # or oauth2 with authorize_url, token_url, userinfo_url
  #   issuer: https://id.acme.example
  #   client_id: ""
  #   client_secret: ""
  #   client_auth: client_secret_basic   # client_secret_post, or none (public, PKCE)
  #   prefix: acme                    # routes /acme/link, /acme/callback, ...
"""


def scalar(value: Any) -> str:
    """`value` as YAML reads it back: plain where that is unambiguous, else JSON-quoted."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is None or isinstance(value, bool | int | float | list | dict):
        return json.dumps(value)
    plain = value and value[0] not in "!&*[]{}|>'\"%@`#," and " #" not in value
    if plain and ": " not in value and yaml.safe_load(value) == value:
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _commented(left: str, text: str) -> list[str]:
    if not text:
        return [left]
    lines = textwrap.wrap(text, WIDTH - COMMENT_COLUMN - 2)
    first = f"{left.ljust(COMMENT_COLUMN - 1)} # {lines[0]}"
    return [first] + [f"{'':{COMMENT_COLUMN}}# {line}" for line in lines[1:]]


def _yaml_settings(specs: Iterable[Setting], indent: str) -> list[str]:
    return [
        line
        for spec in specs
        for line in _commented(f"{indent}{spec.key}: {scalar(spec.default)}", spec.help)
    ]


def config_yaml(providers: Sequence[ProviderSection]) -> str:
    lines = [YAML_HEADER.rstrip("\n")]
    for name, cls in SECTIONS.items():
        lines += ["", *_commented(f"{name}:", _doc(cls))]
        lines += _yaml_settings(settings_of(cls, name + "."), "  ")
    lines += ["", "providers:"]
    for name, about, specs in providers:
        lines += _commented(f"  {name}:", about)
        lines += _yaml_settings(specs, "    ")
    return "\n".join(lines) + "\n" + GENERIC_EXAMPLE


def _doc(cls: type) -> str:
    return " ".join((cls.__doc__ or "").split())


# ---- docs/configuration.md ------------------------------------------------------------


def _cell(text: str) -> str:
    """`text` in a Markdown table cell, outside a code span."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _meaning(spec: Setting) -> str:
    text = spec.help
    if spec.choices:
        text += f". One of: {', '.join(f'`{scalar(c)}`' for c in spec.choices)}"
    if spec.check is not None:
        text += f". Checked: {spec.check.says}"
    if spec.secret:
        text += ". A secret: masked by `--check-config`"
    return _cell(text) + "."


def _env(spec: Setting) -> str:
    suffix = "__<NAME>" if spec.type == dict[str, str] else ""
    return f"`{spec.env}{suffix}`" if spec.env else ""


def settings_table(specs: Iterable[Setting], env: Callable[[Setting], str] = _env) -> list[str]:
    lines = [
        "| Setting | Environment variable | Type | Default | Meaning |",
        "|---|---|---|---|---|",
    ]
    for spec in specs:
        default = scalar(spec.default).replace("|", "\\|")
        kind = _cell(type_name(spec.type))
        lines.append(f"| `{spec.name}` | {env(spec)} | {kind} | `{default}` | {_meaning(spec)} |")
    return lines


def _rules(section: str) -> list[str]:
    found = [rule for rule in RULES if _rule_section(rule) == section]
    if not found:
        return []
    lines = ["", "Checked together:", ""]
    return lines + [f"- {' '.join((rule.__doc__ or '').split())}" for rule in found]


def _rule_section(rule: Callable[..., Any]) -> str:
    """The section of the first setting a rule's docstring names."""
    named = re.search(r"\b([a-z]+)\.[a-z_]", rule.__doc__ or "")
    return named.group(1) if named else ""


def _provider_env(spec: Setting) -> str:
    return "`" + "VHOD_" + spec.name.upper().replace(".", "__") + "`"


def configuration_md(providers: Sequence[ProviderSection], generic: Sequence[Setting]) -> str:
    lines = [DOC_HEADER.rstrip("\n")]
    for name, cls in SECTIONS.items():
        lines += ["", f"## {name}", "", _doc(cls), ""]
        lines += settings_table(settings_of(cls, name + "."))
        lines += _rules(name)
    lines += ["", "## providers", "", PROVIDERS_TEXT.rstrip("\n")]
    for name, about, specs in providers:
        lines += ["", f"### providers.{name}", "", about[:1].upper() + about[1:] + ".", ""]
        lines += settings_table(specs, _provider_env)
    lines += ["", "### Any OpenID Connect or OAuth 2.0 provider", "", GENERIC_TEXT.rstrip("\n")]
    lines += ["", *settings_table(generic, _provider_env)]
    return "\n".join(lines) + "\n"


def generated(root: Path = ROOT) -> dict[Path, str]:
    """Each generated file and the text it should hold."""
    # The one import of providers/ from core/: this tool documents both.
    from providers.oidc import GENERIC_SETTINGS
    from providers.registry import BUILTIN_PROVIDERS, documented_sections

    sections = documented_sections(BUILTIN_PROVIDERS)
    generic = [
        Setting(spec.type, spec.default, spec.help, spec.choices, name=f"providers.<name>.{key}")
        for key, spec in GENERIC_SETTINGS.items()
    ]
    return {
        root / "config.yaml": config_yaml(sections),
        root / "docs" / "configuration.md": configuration_md(sections, generic),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a file drifted")
    args = parser.parse_args(argv)
    drifted = []
    for path, text in generated().items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        drifted.append(path)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    for path in drifted:
        print(f"{path.relative_to(ROOT)}: {'drifted' if args.check else 'written'}")
    return 1 if args.check and drifted else 0


DOC_HEADER = """\
# Configuration

<!-- Generated by `python -m core.config.settings_docs` from the settings table: edit the table
(or core/config/settings_docs.py for this text), not this file. -->

vhod reads `config.yaml` (or the file named by `--config` or `VHOD_CONFIG`), then the
environment: every setting has a variable, `VHOD_` and its path in upper case joined by
`__` (`server.port` is `VHOD_SERVER__PORT`). From the environment, a list is written with
commas (`VHOD_SERVER__CORS_ORIGINS=https://a.example,https://b.example`), other types as in
YAML (`true`, `15`, `null`).

`python server.py --check-config` checks the file and the environment as the start does and
prints the effective configuration, secrets masked. Every problem is one line naming the
setting, and the variable when it came from the environment:

```
vhod: configuration error: server.port: expected int, got str (from VHOD_SERVER__PORT)
```

The shipped `config.yaml` and this page are generated from one table, and a test
(tests/test_settings_table.py) fails when either drifts from it.

## Adding a setting

A core setting is one field in its section's frozen dataclass (core/config/config_sections.py,
core/config/lifecycle_settings.py or core/config/admin_config.py); the code reads it as before
(`config.accounts.require_mfa`):

```python
from core.config.settings import POSITIVE, setting

@dataclass(frozen=True)
class AccountsConfig:
    require_mfa: bool = setting(False, "true: a password sign-in also asks for a second factor")
    mfa_window: int = setting(30, "seconds a one-time password stays good", check=POSITIVE)
```

The annotation is the type (str, int, float, bool, `X | None`, `list[str]`,
`dict[str, str]`, `list[dict[str, Any]]`); `choices=(...)` fixes the values, `check=` takes
a `Check(test, "must be ...")` or one of `POSITIVE`, `at_least`, `between`, `min_bytes`,
`starts_with`; `secret=True` masks it in `--check-config`; `convert=` normalises a good
value (as `server.cors_origins` does). The variable (`VHOD_ACCOUNTS__REQUIRE_MFA`), the type
check, the error message and this page follow. Then run `python -m core.config.settings_docs`
and commit the rewritten `config.yaml` and `docs/configuration.md`.

- A rule across settings is a function in that module's `RULES`, returning
  `"path: what is wrong"` or None; its docstring, which starts with the setting it
  guards, is listed on this page.
- A new section is a dataclass with a docstring (the section's help) and a field of
  `core.config.Config`: `webauthn: WebauthnConfig = field(default_factory=WebauthnConfig)`.
- A key every provider takes (`tls_client_cert`, `extra_headers`, …) is a field of
  `ProviderSettings` in providers/settings.py, made the same way:
  `tls_client_cert: str | None = setting(None, "PEM file of the client certificate")`;
  the provider reads `self.settings.tls_client_cert`.
- A key of one provider (or a plugin) goes in its class's `extra_settings`, as the same
  `Setting` type: `extra_settings = {"host": Setting(str, "id.vk.ru", "VK ID's host")}`;
  the provider reads `self.settings.options["host"]`. Plugins' keys are listed by
  `--check-config`; only the built-in providers' are on this page.

## Why a table of our own, not pydantic-settings

pydantic-settings would declare the same table, but measured on `server.py
--check-config` it imports 684 modules where this table imports 597 (596 before it),
about 90-130 ms more of imports plus 12-20 ms to build the table's models at every start
(median wall time of 10 runs: 634-784 ms against 451-512 ms, and 620-629 ms before the
table, on a shared 2-core machine), and adds 11 MB of dependencies (pydantic-core
compiled) to the container and the single-file executable. Its errors take several lines
per problem, and its environment parsing (JSON for lists and mappings) differs from the
comma lists and YAML values vhod already reads. The table here is about 250 lines of
code (core/config/settings.py), keeps the frozen dataclasses every part of vhod already uses,
under strict mypy, and gives one line per problem naming the setting and its variable.
"""

PROVIDERS_TEXT = """\
One section per provider, `providers.<name>`; a section for a provider that is not installed
stops the start. A provider without a section is still served, unconfigured (its routes
answer 503). Every provider takes the keys below, with its own defaults, and some take keys
of their own. `python server.py --check-config` lists the keys of every installed provider,
plugins included.
"""

GENERIC_TEXT = """\
A section with `type: oidc` (or `oauth2`) and a name no installed provider has gives any
OpenID Connect or OAuth 2.0 provider its five routes, with no code. Besides the keys every
provider takes, it takes:
"""


if __name__ == "__main__":
    sys.exit(main())
