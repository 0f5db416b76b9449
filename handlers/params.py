"""Request parameters from the query string and a JSON or form body, parsed strictly.

Plain functions over bytes and strings, no Tornado: every client-controlled byte is decoded
as strict UTF-8, nesting is bounded before anything recurses, and a bad input is an
`invalid_request` ApiError, never a 500 and never a silently replaced character (AP6).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload
from urllib.parse import parse_qsl

from core.domain.errors import invalid_request

# Parameters are flat strings; anything deeper than this is not a request of ours.
MAX_JSON_DEPTH = 32
JSON_TYPE = re.compile(r"^application/([a-z0-9.+-]+\+)?json\s*(;|$)", re.I)
FORM_TYPE = "application/x-www-form-urlencoded"


def decode_text(raw: bytes, what: str) -> str:
    """`raw` as UTF-8; invalid bytes are the client's error, not a U+FFFD to sign in with (D5)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid_request(f"The {what} is not valid UTF-8.") from exc


def query_params(arguments: Mapping[str, Sequence[bytes]]) -> dict[str, str]:
    """The query string's parameters (as Tornado splits them), the last value of each."""
    return {key: decode_text(values[-1], "query string") for key, values in arguments.items()}


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when brackets outside strings nest deeper than `limit`.

    Checked before json.loads, whose recursion would otherwise end in a RecursionError (D1).
    """
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def parse_json_object(body: bytes) -> dict[str, Any]:
    text = decode_text(body, "JSON body")
    if json_depth_exceeds(text):
        raise invalid_request(f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.")
    try:
        decoded = json.loads(text)
    except ValueError as exc:
        raise invalid_request("The body is not valid JSON.") from exc
    if not isinstance(decoded, dict):
        raise invalid_request("The JSON body must be an object.")
    return decoded


def parse_form(body: bytes) -> dict[str, str]:
    text = decode_text(body, "form body")
    try:
        # errors="strict": a percent-encoded invalid byte (%ff) is refused, not replaced.
        return dict(parse_qsl(text, keep_blank_values=True, errors="strict"))
    except UnicodeDecodeError as exc:
        raise invalid_request("The form body is not valid UTF-8.") from exc


def body_params(body: bytes, content_type: str) -> dict[str, Any]:
    """The parameters of a JSON object or form body; another content type carries none."""
    if not body:
        return {}
    if JSON_TYPE.match(content_type):
        return parse_json_object(body)
    if content_type.split(";")[0].strip().lower() == FORM_TYPE:
        return parse_form(body)
    return {}


@overload
def string_param(params: Mapping[str, Any], name: str) -> str: ...
@overload
def string_param(params: Mapping[str, Any], name: str, *, required: Literal[True]) -> str: ...
@overload
def string_param(params: Mapping[str, Any], name: str, *, required: bool) -> str | None: ...
def string_param(params: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    """A string parameter; anything else (a number, an object such as {"$ne": null}) is 400."""
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise invalid_request(f"The parameter '{name}' is required.")
        return None
    if not isinstance(value, str):
        raise invalid_request(f"The parameter '{name}' must be a string.")
    return value


def flag_param(params: Mapping[str, Any], name: str) -> bool:
    """An optional boolean: JSON true/false, or "true"/"false"/"1"/"0" as text."""
    value = params.get(name)
    if value is None or value == "" or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "1", "false", "0"):
        return value.lower() in ("true", "1")
    raise invalid_request(f"The parameter '{name}' must be true or false.")


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an `Authorization: Bearer …` header, or None."""
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None
