"""The settings table: every setting is declared once, as a field of a frozen dataclass made
with `setting(default, help, ...)`. Its type is the field's annotation, its environment
variable follows from its path (`server.port` -> VHOD_SERVER__PORT).

Reading a section (`build_section`), the effective configuration's masking, `--check-config`
and the generated `config.yaml` and docs/configuration.md (core.config.settings_docs) all read the
table, so a setting cannot be documented without being checked or checked without being
documented. Provider sections use the same `Setting` (providers.settings).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

ENV_PREFIX = "VHOD_"
_SPEC = "vhod.setting"  # the dataclass field metadata key that holds a field's Setting


class ConfigError(ValueError):
    """The configuration cannot be used: one line per problem, each naming its setting."""


@dataclass(frozen=True)
class Check:
    """A rule one value must follow; `says` is both the error and the documentation."""

    ok: Callable[[Any], bool]
    says: str


def at_least(low: float, why: str = "") -> Check:
    return Check(lambda v: v >= low, f"must be at least {low}{why}")


def between(low: float, high: float, why: str = "") -> Check:
    return Check(lambda v: low <= v <= high, f"must be between {low} and {high}{why}")


def min_bytes(size: int, why: str = "") -> Check:
    return Check(lambda v: len(v.encode()) >= size, f"must be at least {size} bytes{why}")


def starts_with(*prefixes: str, says: str) -> Check:
    return Check(lambda v: v.startswith(prefixes), says)


POSITIVE = Check(lambda v: v > 0, "must be greater than 0")


@dataclass(frozen=True)
class Setting:
    """One setting: its type (str, int, float, bool, their `| None`, list[str],
    dict[str, str] or list[dict[str, Any]]), default and help text; `choices` fixes the
    values it may take, `check` any further rule. None (where the type allows it) skips both.

    In a table, `name` is its dotted path and `env` its environment variable."""

    type: Any
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    check: Check | None = None
    secret: bool = False  # masked in --check-config's output
    convert: Callable[[Any], Any] | None = None  # normalises a good value; ValueError refuses it
    name: str = ""
    env: str = ""

    @property
    def key(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    def parse(self, value: Any) -> Any:
        """`value` as this setting's type, checked; ValueError says why not (without the path)."""
        value = typed(value, self.type)
        if value is None:
            return None
        if self.choices and value not in self.choices:
            raise ValueError(f"expected one of {', '.join(map(str, self.choices))}")
        if self.check is not None and not self.check.ok(value):
            raise ValueError(self.check.says)
        if self.convert is not None:
            try:
                value = self.convert(value)
            except ValueError as exc:
                raise ValueError(str(exc).removeprefix(f"{self.name}: ")) from exc
        return value


def setting(
    default: Any,
    help: str,
    *,
    choices: tuple[Any, ...] = (),
    check: Check | None = None,
    secret: bool = False,
    convert: Callable[[Any], Any] | None = None,
) -> Any:
    """A dataclass field declared as a setting: `port: int = setting(8888, "port to listen on")`."""
    spec = Setting(None, default, help, choices, check, secret, convert)
    meta = {_SPEC: spec}
    if isinstance(default, list | dict):
        return field(default_factory=functools.partial(copy.copy, default), metadata=meta)
    return field(default=default, metadata=meta, repr=not secret)


def env_name(path: str) -> str:
    return ENV_PREFIX + path.upper().replace(".", "__")


@functools.cache
def table(cls: type, prefix: str) -> dict[str, tuple[str, Setting]]:
    """The settings of dataclass `cls` by key, with their field names, under path `prefix`
    ("server."). A field named after a Python keyword ends in "_" (email.from_): its key
    has none."""
    hints = typing.get_type_hints(cls)
    found = {}
    for item in dataclasses.fields(cls):
        if (spec := item.metadata.get(_SPEC)) is not None:
            key = item.name.removesuffix("_")
            path = prefix + key
            resolved = dataclasses.replace(
                spec, type=hints[item.name], name=path, env=env_name(path)
            )
            found[key] = (item.name, resolved)
    return found


def settings_of(cls: type, prefix: str) -> list[Setting]:
    return [spec for _attr, spec in table(cls, prefix).values()]


class EnvValue(str):
    """A string from the environment: parsed as YAML where the setting wants another type."""


def build_section(
    cls: type, raw: Any, prefix: str, problems: list[str], sources: Mapping[str, str]
) -> Any:
    """An instance of section `cls` from its mapping `raw`; what is wrong goes to `problems`
    (the defaults stand in), one line each, naming the setting and its variable."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(named(f"{prefix.rstrip('.')}: must be a mapping", sources))
        return cls()
    specs = table(cls, prefix)
    problems.extend(
        named(f"{prefix}{key}: unknown key", sources) for key in raw if key not in specs
    )
    values = {}
    for key, (attr, spec) in specs.items():
        if key in raw:
            try:
                values[attr] = spec.parse(raw[key])
            except ValueError as exc:
                problems.append(named(f"{spec.name}: {exc}", sources))
    return cls(**values)


def named(problem: str, sources: Mapping[str, str]) -> str:
    """`problem` ("path: what is wrong") with the environment variable the value came from,
    at the end: the line still starts with the path."""
    path, sep, _rest = problem.partition(":")
    var = sources.get(path) or next(
        (var for key, var in sources.items() if key.startswith(path + ".")), None
    )
    return f"{problem} (from {var})" if var and sep else problem


# ---- types ----------------------------------------------------------------------------


def _string_mapping(value: Any) -> dict[str, str] | None:
    if value is None:
        return {}
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return {k: str(v) for k, v in value.items()}  # str(): an environment value
    return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _mappings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# Each type a setting may have: its name in messages and docs, whether a value is one, and
# the value as kept.
KINDS: dict[Any, tuple[str, Callable[[Any], bool], Callable[[Any], Any]]] = {
    type(None): ("null", lambda v: v is None, lambda v: None),
    bool: ("bool", lambda v: isinstance(v, bool), bool),
    int: ("int", lambda v: _number(v) and isinstance(v, int), int),
    float: ("float", _number, float),
    str: ("str", lambda v: isinstance(v, str), str),
    list[str]: ("a list of strings", _strings, lambda v: [str(x) for x in v]),
    dict[str, str]: (
        "a mapping of strings",
        lambda v: _string_mapping(v) is not None,
        _string_mapping,
    ),
    list[dict[str, Any]]: ("a list of mappings", _mappings, lambda v: [dict(x) for x in v]),
}


def kinds_of(hint: Any) -> tuple[Any, ...]:
    return typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)


def type_name(hint: Any) -> str:
    return " or ".join(KINDS[kind][0] for kind in kinds_of(hint))


def typed(value: Any, hint: Any) -> Any:
    """`value` as type `hint`, or ValueError("expected int, got str")."""
    kinds = kinds_of(hint)
    if isinstance(value, EnvValue):
        value = _from_env(value, kinds)
    for kind in kinds:
        _name, accepts, keep = KINDS[kind]
        if accepts(value):
            return keep(value)
    quote = " (quote numeric ids in YAML)" if str in kinds and _number(value) else ""
    raise ValueError(f"expected {type_name(hint)}, got {type(value).__name__}{quote}")


def _from_env(value: EnvValue, kinds: tuple[Any, ...]) -> Any:
    if str in kinds and value.lower() not in ("null", "~"):
        return str(value)
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise ValueError(f"cannot parse {value!r}") from exc
    if parsed is not None and list[str] in kinds and not isinstance(parsed, list):
        return [item.strip() for item in str(parsed).split(",") if item.strip()]
    return parsed
