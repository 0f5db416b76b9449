"""One catalogue of error codes (core/domain/error_catalogue.py): the service answers no code it
lacks, the OpenAPI document lists none it lacks, and docs/errors.md is made from it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.domain.error_catalogue import CATALOGUE, markdown
from core.domain.social_callback import CALLBACK_ERRORS, UNKNOWN_CALLBACK_ERROR
from handlers.docs import load_spec
from handlers.errors import SERVER_ERROR, STATUS_CODES

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("server.py", "core", "handlers", "providers", "storage")

# Where an ApiError's code is not a literal, the code comes from one of these tables, each
# checked below.
COMPUTED_CODE_SITES = {
    "core/domain/social.py": "CALLBACK_ERRORS / UNKNOWN_CALLBACK_ERROR (social_callback.py)",
    "handlers/errors.py": "STATUS_CODES",
    "handlers/docs.py": "write_error: server_error, not_found, method_not_allowed",
}


def source_files() -> Iterator[Path]:
    for name in SOURCES:
        path = ROOT / name
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def api_errors_raised() -> tuple[dict[str, set[int | None]], set[str]]:
    """Every `ApiError(status, code, …)` in the source: literal codes with their statuses,
    and the files that compute a code."""
    literal: dict[str, set[int | None]] = {}
    computed: set[str] = set()
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name != "ApiError" or len(node.args) < 2:
                continue
            status, code = node.args[0], node.args[1]
            if isinstance(code, ast.Constant) and isinstance(code.value, str):
                value = status.value if isinstance(status, ast.Constant) else None
                literal.setdefault(code.value, set()).add(value)
            else:
                computed.add(path.relative_to(ROOT).as_posix())
    return literal, computed


def test_every_code_the_source_raises_is_in_the_catalogue_with_its_status():
    literal, _ = api_errors_raised()
    assert len(literal) > 25  # the scan saw the source
    for code, statuses in literal.items():
        assert code in CATALOGUE, f"{code} is raised but not in core/domain/error_catalogue.py"
        known = set(CATALOGUE[code].statuses)
        assert statuses - {None} <= known, (code, statuses)


def test_codes_computed_at_run_time_come_from_tables_the_catalogue_covers():
    _, computed = api_errors_raised()
    assert computed == set(COMPUTED_CODE_SITES), "a new place computes an error code"
    for status, code in STATUS_CODES.items():
        assert status in CATALOGUE[code].statuses, code
    for code in [*CALLBACK_ERRORS, UNKNOWN_CALLBACK_ERROR[0]]:
        assert 400 in CATALOGUE[code].statuses, code
    for code in ("server_error", "not_found", "method_not_allowed", SERVER_ERROR.code):
        assert code in CATALOGUE


def documented_errors(spec: dict[str, Any]) -> Iterator[tuple[str, int, str]]:
    """(where, status, code) for every error code an operation's response declares."""
    components = spec["components"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue  # path-level parameters
            for status, response in operation.get("responses", {}).items():
                if not status.isdigit() or int(status) < 400:
                    continue
                if "$ref" in response:
                    response = components["responses"][response["$ref"].split("/")[-1]]
                content = response.get("content", {}).get("application/json")
                if not content:
                    continue
                schema = content["schema"]
                if "$ref" in schema:
                    schema = components["schemas"][schema["$ref"].split("/")[-1]]
                error = schema.get("properties", {}).get("error", {})
                for code in error.get("enum", []):
                    yield f"{method.upper()} {path}", int(status), code


def test_every_error_the_document_declares_is_in_the_catalogue_with_its_status():
    seen = 0
    for where, status, code in documented_errors(load_spec()):
        seen += 1
        assert code in CATALOGUE, (
            f"{where} declares {code}, which core/domain/error_catalogue.py lacks"
        )
        assert status in CATALOGUE[code].statuses, (where, status, code)
    assert seen > 100


def test_docs_errors_md_is_made_from_the_catalogue():
    """`python -m core.domain.error_catalogue > docs/errors.md` after a change to the catalogue."""
    assert (ROOT / "docs" / "errors.md").read_text(encoding="utf-8") == markdown()
