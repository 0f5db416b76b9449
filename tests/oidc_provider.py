"""panva's oidc-provider, a certified OpenID Provider, on 127.0.0.1 for the suite.

oidc-provider is pinned in tests/oidc/package-lock.json and installed with `npm ci` into
tests/oidc/node_modules (gitignored), once per lockfile. Without Node.js the tests skip,
except in CI (CI=true), where they fail. `OpenIdProvider.sign_in(url)` plays the browser at
its devInteractions login and consent pages with plain HTTP requests.
"""

from __future__ import annotations

import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from tests.processes import ROOT, free_port, npm_ci

FOLDER = ROOT / "tests" / "oidc"
NODE_MODULES = FOLDER / "node_modules"


def install() -> None:
    """tests/oidc/node_modules from the lockfile, when the lockfile changed."""
    npm_ci(FOLDER, "oidc-npm")


class _Forms(HTMLParser):
    """The forms of a devInteractions page: action and the inputs' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append((values.get("action", ""), {}))
        elif tag == "input" and self.forms and values.get("name"):
            self.forms[-1][1][values["name"]] = values.get("value", "")


class OpenIdProvider:
    """One oidc-provider process with static clients."""

    def __init__(
        self,
        folder: Path,
        clients: list[dict[str, Any]],
        *,
        port: int | None = None,
        profile: str = "",
    ) -> None:
        """`profile` "telegram": configured as Telegram Login is (tests/oidc/provider.mjs)."""
        self.port = port or free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"oidc-provider-{self.port}.log"
        clients_file = folder / f"clients-{self.port}.json"
        clients_file.write_text(json.dumps(clients))
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                ["node", str(FOLDER / "provider.mjs"), str(self.port), str(clients_file)]
                + ([profile] if profile else []),
                cwd=FOLDER,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # "ready", or nothing if it died
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"oidc-provider did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    async def sign_in(self, url: str, *, login: str = "ivan") -> dict[str, str]:
        """Follow an authorization URL through the login and consent forms like a browser;
        return the query of the redirect back to the client."""
        client = AsyncHTTPClient()
        cookies: dict[str, str] = {}
        method, body = "GET", None
        for _ in range(16):
            headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            response = await client.fetch(
                HTTPRequest(url, method=method, body=body, headers=headers, follow_redirects=False),
                raise_error=False,
            )
            for line in response.headers.get_list("Set-Cookie"):
                name, _, rest = line.partition("=")
                cookies[name.strip()] = rest.split(";", 1)[0]
            if response.code in (302, 303):
                url = urljoin(url, response.headers["Location"])
                method, body = "GET", None
                if not url.startswith(self.issuer + "/"):
                    return dict(parse_qsl(urlsplit(url).query))
                continue
            page = (response.body or b"").decode()
            forms = _Forms()
            forms.feed(page)
            if response.code != 200 or not forms.forms:
                raise AssertionError(f"oidc-provider answered {response.code}: {page[:500]}")
            action, fields = forms.forms[0]
            if "login" in fields:
                fields.update(login=login, password="any")  # devInteractions accepts any
            url, method, body = urljoin(url, action), "POST", urlencode(fields)
        raise AssertionError("too many steps at oidc-provider")
