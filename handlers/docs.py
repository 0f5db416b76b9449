"""The API description: /openapi.json from openapi.yaml, and Swagger UI at /docs, served locally."""

from __future__ import annotations

import functools
import json
import re
import sys
from http.client import responses
from pathlib import Path
from typing import Any

import tornado.web
import yaml
from swagger_ui_bundle import swagger_ui_path
from tornado.escape import json_encode

from core.domain.errors import ApiError
from core.infra.bundle import bundle_root
from core.infra.version import version
from handlers.base import JsonHandler
from providers.openapi import with_providers
from providers.registry import BUILTIN_PROVIDERS, build_providers


def _spec_path() -> Path:
    """openapi.yaml beside the modules (run from the folder) or in the single executable's
    bundle, else where `pip install` put it (share/vhod under the environment, or under a
    --target folder)."""
    here = bundle_root()
    for candidate in (here, Path(sys.prefix) / "share" / "vhod", here / "share" / "vhod"):
        if (candidate / "openapi.yaml").is_file():
            return candidate / "openapi.yaml"
    return here / "openapi.yaml"


SPEC_PATH = _spec_path()
# The files of the installed Swagger UI distribution that the page loads; nothing else of the
# package is reachable.
ASSETS = (
    "swagger-ui.css",
    "index.css",
    "swagger-ui-bundle.js",
    "favicon-32x32.png",
    "favicon-16x16.png",
)
# By suffix rather than from `mimetypes`, whose answer depends on the machine's mime.types.
_ASSET_TYPES = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}
# The page and everything it loads come from this server: no CDN, no inline script or style.
# Images may also be data: URIs, which is how swagger-ui.css draws its icons (the arrows of
# a select, the copy button, the model toggles); data: is allowed for nothing else.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# What GET / links to, relative to it like everything the docs page loads. The JWKS is served
# where asymmetric signing is configured.
INDEX_LINKS = {
    "docs": "docs",
    "openapi": "openapi.json",
    "health": "healthz",
    "jwks": ".well-known/jwks.json",
}

# Relative URLs, so that the page also works behind a proxy that mounts vhod under a prefix.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vhod {version} API</title>
<link rel="stylesheet" href="docs/static/swagger-ui.css">
<link rel="stylesheet" href="docs/static/index.css">
<link rel="icon" type="image/png" href="docs/static/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="docs/static/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/static/swagger-ui-bundle.js"></script>
<script src="docs/swagger-initializer.js"></script>
</body>
</html>
"""

# validatorUrl null: Swagger UI would otherwise load a badge from validator.swagger.io.
SCRIPT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    supportedSubmitMethods: ["get", "post"]
  });
});
"""


def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    """The OpenAPI document as data: openapi.yaml plus the routes of the built-in providers
    it does not describe itself (generated from the registry, like a plugin's)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses it 7 times faster
    with path.open(encoding="utf-8") as file:
        document: dict[str, Any] = yaml.load(file, Loader=loader)  # noqa: S506 - a safe loader
    document["info"]["version"] = version()  # pyproject.toml's, the one `/` reports too
    builtins = build_providers(BUILTIN_PROVIDERS, {}, public_url="http://127.0.0.1")
    return with_providers(document, builtins)


@functools.cache
def served_spec() -> dict[str, Any]:
    """The document, read once per process; callers must not change it."""
    return load_spec()


@functools.cache
def spec_json() -> str:
    """The document as the JSON text /openapi.json serves with the built-in providers."""
    return json.dumps(served_spec(), ensure_ascii=False)


def index_document(spec: dict[str, Any]) -> dict[str, Any]:
    """The JSON answer of GET /: what this server is, and where its documentation lives."""
    info = spec["info"]
    return {
        "name": info["title"],
        "version": info["version"],
        "summary": info["summary"],
        "links": dict(INDEX_LINKS),
    }


def prefers_html(accept: str) -> bool:
    """Whether an Accept header ranks text/html above JSON, as a browser's does.

    `*/*` alone (curl, HTTP libraries) is no preference: such clients get JSON."""
    quality = {"text/html": 0.0, "application/json": 0.0}
    for media_range in accept.split(",")[:32]:  # bounded: the header is the client's
        kind, *options = (part.strip() for part in media_range.split(";"))
        if kind.lower() not in quality:
            continue
        q = 1.0
        for option in options:
            name, _, value = option.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[kind.lower()] = max(quality[kind.lower()], q)
    return quality["text/html"] > quality["application/json"]


class IndexHandler(JsonHandler):
    """GET /: a short JSON index, or, for a browser, a redirect to the docs page."""

    def initialize(self, index: str) -> None:  # type: ignore[override]
        super().initialize()
        self.index = index

    def get(self) -> None:
        self.add_header("Vary", "Accept")  # beside the Vary: Origin of CORS
        if prefers_html(self.request.headers.get("Accept", "")):
            self.redirect(INDEX_LINKS["docs"])
            return
        self.finish(self.index)


class OpenApiHandler(JsonHandler):
    cacheable = True

    def initialize(self, document: str) -> None:  # type: ignore[override]
        super().initialize()
        self.document = document

    def get(self) -> None:
        self.finish(self.document)


class DocsPageHandler(JsonHandler):
    cacheable = True

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("Referrer-Policy", "no-referrer")
        self.finish(PAGE.format(version=version()))


class DocsScriptHandler(JsonHandler):
    cacheable = True

    def get(self) -> None:
        self.set_header("Content-Type", "text/javascript; charset=UTF-8")
        self.finish(SCRIPT)


class DocsAssetHandler(tornado.web.StaticFileHandler):
    """Files of the Swagger UI package; errors are JSON like everywhere else."""

    route_label = "/docs/static/*"  # one metrics label for the few files

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")

    def get_content_type(self) -> str:
        return _ASSET_TYPES[Path(self.absolute_path or "").suffix]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code >= 500:
            code, description = "server_error", "The server failed to process the request."
        elif status_code == 404:
            code, description = "not_found", "There is no such resource."
        elif status_code == 405:
            code = "method_not_allowed"
            description = f"The method {self.request.method} is not allowed here."
        else:
            code = "invalid_request"
            description = responses.get(status_code, "The request was refused.")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json_encode(ApiError(status_code, code, description).body()))


def docs_routes(providers: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Routes of the API description: the index at /, /openapi.json, /docs and the page's
    scripts and styles. The document lists the routes of every provider in `providers`
    (plugins and configured OpenID Connect providers included)."""
    document = spec_json()
    if providers is not None:
        document = json.dumps(with_providers(served_spec(), providers), ensure_ascii=False)
    index = json.dumps(index_document(served_spec()), ensure_ascii=False)
    assets = "|".join(re.escape(name) for name in ASSETS)
    return [
        (r"/", IndexHandler, {"index": index}),
        (r"/openapi\.json", OpenApiHandler, {"document": document}),
        (r"/docs", DocsPageHandler),
        (r"/docs/swagger-initializer\.js", DocsScriptHandler),
        (rf"/docs/static/({assets})", DocsAssetHandler, {"path": str(swagger_ui_path)}),
    ]
