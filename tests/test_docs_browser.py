"""/docs: Swagger UI served by vhod itself, drawn by headless Chromium under a CSP that allows
only vhod's own files (and data: images, Swagger UI's icons); GET /, the index that sends a
browser there."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from handlers.docs import load_spec, prefers_html
from tests.processes import Server, missing_tool

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
OPERATION_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@pytest.fixture
def chromium() -> Path:
    """The browser; without it the test skips, except in CI, where it fails."""
    if not CHROMIUM.exists():
        missing_tool(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    return CHROMIUM


class RenderedOperations(HTMLParser):
    """(method, path) of every operation block Swagger UI drew: the data-path of an
    `opblock-summary-path` inside a `div.opblock.opblock-<method>`."""

    def __init__(self) -> None:
        super().__init__()
        self.method: str | None = None
        self.found: set[tuple[str, str]] = set()
        self.error_boxes = 0
        self.classes: set[str] = set()
        self.selects = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        self.classes.update(classes)
        self.selects += tag == "select"
        if tag == "div" and "opblock" in classes:
            kinds = [c.removeprefix("opblock-") for c in classes if c.startswith("opblock-")]
            self.method = next((k for k in kinds if k in OPERATION_METHODS), None)
        if "opblock-summary-path" in classes and self.method and attributes.get("data-path"):
            self.found.add((self.method, attributes["data-path"]))
        if "errors-wrapper" in classes:
            self.error_boxes += 1


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    config = tmp_path / "docs.yaml"
    config.write_text(
        "passwords:\n  algorithm: bcrypt\n  bcrypt_rounds: 4\n"
        f"server:\n  data_dir: {tmp_path / 'data'}\n"
        f"storage:\n  url: sqlite:///{tmp_path / 'data' / 'vhod.db'}\n"
    )
    server = Server(tmp_path, "--config", str(config))
    try:
        server.wait_started()
        yield server
    finally:
        server.stop()


def render(chromium: Path, url: str, profile: Path) -> tuple[str, str]:
    """The DOM after scripts ran, and Chromium's log (console messages included)."""
    done = subprocess.run(
        [
            str(chromium),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--log-level=0",
            # Virtual time runs ahead whenever the page is idle, so this costs far less.
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


# An operation opened by deep link, so that its parts with icons are drawn too.
OPENED = "#/tokens/refreshWithBody"


def test_docs_page_renders_every_operation_and_its_icons(chromium, server, tmp_path):
    # A browser that opens the index is sent to the page; the fragment goes along.
    dom, log = render(chromium, server.url("/" + OPENED), tmp_path / "chromium-profile")
    page = RenderedOperations()
    page.feed(dom)
    documented = {
        (method, path)
        for path, item in load_spec()["paths"].items()
        for method in OPERATION_METHODS
        if method in item
    }
    assert page.found == documented
    assert page.error_boxes == 0
    # Drawn: the elements swagger-ui.css gives data: icons (the servers and media type
    # selects, the copy button of the opened operation)...
    assert page.selects >= 2 and "copy-to-clipboard" in page.classes
    assert "opblock-body" in page.classes, "the deep-linked operation is open"
    # ...and nothing the page needs, those icons included, was refused by its CSP.
    assert "Content Security Policy" not in log, re.findall(r".*Content Security Policy.*", log)
    # The page's requests all reached vhod, which logs each one.
    served = server.log()
    assert "302 GET / (" in served and "200 GET /docs (" in served
    for asset in ("/docs/static/swagger-ui-bundle.js", "/docs/swagger-initializer.js"):
        assert f"200 GET {asset}" in served
    assert "200 GET /openapi.json" in served


async def test_docs_page_allows_only_its_own_origin(http_server_client):
    response = await http_server_client.fetch("/docs")
    assert response.headers["Content-Type"].startswith("text/html")
    policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(None, 1) for d in policy.split(";") if d.strip())
    assert directives["default-src"] == "'self'"
    # Swagger UI draws its icons as data: images; data: is allowed for images only.
    assert directives.pop("img-src") == "'self' data:"
    for name, sources in directives.items():
        assert set(sources.split()) <= {"'self'", "'none'"}, (name, sources)
    html = response.body.decode()
    assert "<script>" not in html and "<style" not in html and "style=" not in html
    # Every script and style the page names is one of vhod's own, served with its type.
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not re.match(r"^[a-z]+:|^//", url), url
        asset = await http_server_client.fetch("/" + url)
        assert asset.code == 200, url
        expected = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
        assert asset.headers["Content-Type"].startswith(expected[Path(url).suffix]), url


async def test_only_the_listed_package_files_are_served(http_server_client):
    for path in (
        "/docs/static/index.html",
        "/docs/static/swagger-ui-bundle.js.map",
        "/docs/static/../__init__.py",
        "/docs/static/%2e%2e/__init__.py",
    ):
        response = await http_server_client.fetch(path, raise_error=False)
        assert response.code == 404, path
        assert response.headers["Content-Type"].startswith("application/json"), path


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


async def test_the_index_names_the_api_and_links_to_its_documentation(http_server_client):
    for accept in (None, "*/*", "application/json", "application/json, text/html;q=0.5"):
        headers = {"Accept": accept} if accept else {}
        response = await http_server_client.fetch("/", headers=headers, follow_redirects=False)
        assert response.code == 200, accept
        assert response.headers["Content-Type"].startswith("application/json")
        assert "Accept" in response.headers.get_list("Vary")
        index = json.loads(response.body)
        spec = load_spec()
        assert index["name"] == "vhod" and index["version"] == spec["info"]["version"]
    assert set(index["links"]) == {"docs", "openapi", "health", "jwks"}
    assert index["links"]["jwks"] == ".well-known/jwks.json"
    # The links are relative to the index, so that they hold behind a proxy's prefix too.
    for name in ("docs", "openapi", "health"):
        link = await http_server_client.fetch("/" + index["links"][name])
        assert link.code == 200, name


async def test_the_index_sends_a_browser_to_the_docs_page(http_server_client):
    response = await http_server_client.fetch(
        "/", headers={"Accept": BROWSER_ACCEPT}, follow_redirects=False, raise_error=False
    )
    assert response.code == 302
    assert response.headers["Location"] == "docs"
    assert "Accept" in response.headers.get_list("Vary")


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER_ACCEPT, True),
        ("text/html", True),
        ("TEXT/HTML; q=0.7, application/json; q=0.3", True),
        ("*/*", False),
        ("", False),
        ("application/json", False),
        ("text/html;q=0.5, application/json", False),
        ("text/html;q=0, */*", False),
        ("text/html;q=bogus", False),
        ("application/json," * 40 + "text/html", False),  # past the ranges read
    ],
)
def test_prefers_html(accept, html):
    assert prefers_html(accept) is html
