"""Passkeys in a real browser: Debian's Chromium, headless, driven over the DevTools protocol
with a virtual CTAP2 authenticator (resident keys, user verification). A small page on
http://localhost:<port> (a secure context) registers a passkey with
navigator.credentials.create() and signs in with navigator.credentials.get() against vhod
on another port, across CORS, as a front end on its own origin would."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tests.processes import Server, free_port, missing_tool, setting_env

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
PAGE = Path(__file__).parent / "fixtures" / "passkeys.html"


@pytest.fixture
def chromium() -> Path:
    """The browser; without it the test skips, except in CI, where it fails."""
    if not CHROMIUM.exists():
        missing_tool(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
def page_port() -> int:
    return free_port()


@pytest.fixture
def vhod(tmp_path: Path, page_port: int) -> Iterator[Server]:
    origin = f"http://localhost:{page_port}"
    env = setting_env(
        {
            "passwords.algorithm": "bcrypt",
            "passwords.bcrypt_rounds": 4,
            "storage.url": f"sqlite:///{tmp_path / 'data' / 'vhod.db'}",
            "server.data_dir": str(tmp_path / "data"),
            "server.cors_origins": origin,
            "webauthn.rp_id": "localhost",
            "webauthn.origins": origin,
        }
    )
    server = Server(tmp_path, **env)
    try:
        server.wait_started()
        yield server
    finally:
        server.stop()


class PageHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(PAGE.read_text().replace("VHOD_URL", self.settings["vhod_url"]))


def serve_page(vhod: Server, page_port: int) -> tuple[HTTPServer, str]:
    """The front end's page, served by the test on http://localhost:<page_port>/."""
    app = tornado.web.Application([(r"/", PageHandler)], vhod_url=f"http://localhost:{vhod.port}")
    server = HTTPServer(app)
    server.listen(page_port, "127.0.0.1")
    return server, f"http://localhost:{page_port}/"


class DevTools:
    """One page target of a browser, over the DevTools protocol's websocket."""

    def __init__(self, socket: WebSocketClientConnection, session: str = "") -> None:
        self.socket = socket
        self.session = session
        self.ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        await self.socket.write_message(json.dumps(message))
        while True:  # events and other answers go by; this call's answer ends it
            raw = await asyncio.wait_for(self.socket.read_message(), 60)
            assert raw is not None, "the browser closed its DevTools connection"
            answer = json.loads(raw)
            if answer.get("id") == number:
                assert "error" not in answer, (method, answer["error"])
                result: dict[str, Any] = answer["result"]
                return result


@pytest.fixture
def devtools_url(chromium: Path, tmp_path: Path) -> Iterator[str]:
    """Headless Chromium; the websocket URL of its DevTools endpoint."""
    profile = tmp_path / "chromium-profile"
    with open(tmp_path / "chromium.log", "wb") as log:
        process = subprocess.Popen(
            [
                str(chromium),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        port_file = profile / "DevToolsActivePort"  # the port it chose, and the browser's path
        deadline = time.monotonic() + 60
        while not (port_file.exists() and len(port_file.read_text().splitlines()) == 2):
            assert process.poll() is None, (tmp_path / "chromium.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "Chromium opened no DevTools port"
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()
        yield f"ws://127.0.0.1:{port}{path}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def page_target(url: str) -> tuple[WebSocketClientConnection, DevTools]:
    socket = await websocket_connect(url, max_message_size=1 << 26)
    browser = DevTools(socket)
    target = await browser.send("Target.createTarget", url="about:blank")
    attached = await browser.send(
        "Target.attachToTarget", targetId=target["targetId"], flatten=True
    )
    return socket, DevTools(socket, attached["sessionId"])


async def test_a_browser_registers_a_passkey_and_signs_in_with_it(devtools_url, vhod, page_port):
    page_server, page = serve_page(vhod, page_port)
    socket, browser = await page_target(devtools_url)
    try:
        outcome, held = await run_story(browser, page)
    finally:
        socket.close()
        page_server.stop()
    # The authenticator holds one discoverable credential, the one vhod listed.
    [credential] = held["credentials"]
    assert credential["isResidentCredential"] is True
    assert credential["rpId"] == "localhost"
    [listed] = outcome["passkeys"]
    assert listed["name"] == "Browser key" and listed["last_used"] is not None
    # Signed in with the passkey alone: the same account, hardware key with verification.
    first = jwt.decode(outcome["registered"]["access"], options={"verify_signature": False})
    token = jwt.decode(outcome["signed_in"]["access"], options={"verify_signature": False})
    assert token["sub"] == first["sub"]
    assert token["amr"] == ["hwk", "mfa"]
    for route in ("register/options", "register", "login/options", "login"):
        line = f"200 POST /authorization/passkeys/{route} ("
        # The access log is written after the answer: wait for the last line to land.
        vhod.wait_until(lambda line=line: line in vhod.log(), 10, f"the log of {route}")


async def run_story(browser: DevTools, page: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The page's outcome, and the credentials the virtual authenticator then holds."""
    await browser.send("WebAuthn.enable")
    added = await browser.send(
        "WebAuthn.addVirtualAuthenticator",
        options={
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": True,
            "hasUserVerification": True,
            "isUserVerified": True,
            "automaticPresenceSimulation": True,
        },
    )
    await browser.send("Page.enable")
    await browser.send("Page.navigate", url=page)
    # The page's script runs the whole story; window.finished is its promise, once loaded.
    for _ in range(600):
        found = await browser.send(
            "Runtime.evaluate", expression="typeof window.finished", returnByValue=True
        )
        if found["result"].get("value") == "object":
            break
        await asyncio.sleep(0.05)
    done = await browser.send(
        "Runtime.evaluate",
        expression="window.finished",
        awaitPromise=True,
        returnByValue=True,
        timeout=60_000,
    )
    outcome = done["result"].get("value")
    assert isinstance(outcome, dict), done
    assert outcome.get("error") is None, outcome
    held = await browser.send("WebAuthn.getCredentials", authenticatorId=added["authenticatorId"])
    return outcome, held
