"""vhod's tokens checked by libraries vhod does not use, in their own processes, from the JWKS
alone: Node's jose (createRemoteJWKSet + jwtVerify) and PyJWT's PyJWKClient in a virtualenv
of its own. Both follow key rotations on two instances that share one store (JW7).

The verifiers are installed on first use into .cache/verifiers (gitignored), from npm and PyPI.
"""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.processes import ROOT, Server, clean_env, free_port, install_lock, request
from tests.storage_fixtures import with_database

pytestmark = pytest.mark.slow

JOSE = "jose@6.2.17"
PYJWT = ["PyJWT[crypto]==2.15.1", "cryptography==50.0.2"]
CACHE = ROOT / ".cache" / "verifiers"
HERE = Path(__file__).resolve().parent / "verifiers"
AUDIENCE = "orders-api"
KEK = "one-key-encryption-key-for-every-instance"
SHORT_LEAD = HERE / "short_lead_server.py"  # server.py with a least lead of 2 s: tests only


def install_verifiers() -> tuple[Path, Path]:
    """(folder with jose and its script, the separate virtualenv's python), installed once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    node_dir, venv = CACHE / "node", CACHE / "pyjwt-venv"
    with install_lock("verifiers"):  # parallel test runs install once
        marker = node_dir / f".installed-{JOSE}"
        if not marker.exists():
            if shutil.which("npm") is None:
                pytest.fail("npm is needed to install the jose verifier")
            subprocess.run(
                ["npm", "install", "--prefix", str(node_dir), JOSE, "--no-audit", "--no-fund"],
                check=True,
                capture_output=True,
                timeout=300,
            )
            marker.touch()
        marker = venv / (".installed-" + "-".join(PYJWT).replace("[", "").replace("]", ""))
        if not marker.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
            subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *PYJWT],
                check=True,
                capture_output=True,
                timeout=300,
            )
            marker.touch()
    # ESM resolves `import "jose"` from the script's folder: the script sits beside node_modules.
    shutil.copy(HERE / "jose_verify.mjs", node_dir / "jose_verify.mjs")
    return node_dir, venv / "bin" / "python"


@pytest.fixture(scope="session")
def verifier_tools() -> tuple[Path, Path]:
    try:
        return install_verifiers()
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.fail(f"cannot install the third-party verifiers: {exc}")


class Verifier:
    """One verifier process: a token in on stdin, a JSON verdict out on stdout."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=clean_env(),
        )

    def check(self, token: str, timeout: float = 20) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(token + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.process.kill()
            errors = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"{self.name} gave no answer: {errors}")
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def verifiers(
    tools: tuple[Path, Path], issuer: str, jwks_max_age: int, audience: str = AUDIENCE
) -> list[Verifier]:
    node_dir, python = tools
    jwks = f"{issuer}/.well-known/jwks.json"
    return [
        Verifier(
            "jose",
            [
                "node",
                str(node_dir / "jose_verify.mjs"),
                jwks,
                issuer,
                audience,
                str(jwks_max_age * 1000),
            ],
        ),
        Verifier(
            "PyJWKClient",
            [str(python), str(HERE / "pyjwt_verify.py"), issuer, audience, str(jwks_max_age)],
        ),
    ]


USER = {"phone_number": "+79161234567", "email": "ann@example.com", "hash_password": "p" * 8}


def test_a_fresh_install_is_verified_from_the_jwks_alone(tmp_path, verifier_tools):
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    # Nothing about keys or algorithms: a new install signs with ES256.
    server = Server(
        tmp_path,
        port=port,
        VHOD_SERVER__DATA_DIR=str(tmp_path / "data"),
        VHOD_STORAGE__URL=f"sqlite:///{tmp_path / 'data' / 'vhod.db'}",
        VHOD_JWT__ISSUER=issuer,
        VHOD_JWT__AUDIENCE=AUDIENCE,
        VHOD_PASSWORDS__ALGORITHM="bcrypt",
        VHOD_PASSWORDS__BCRYPT_ROUNDS="4",
    )
    checkers: list[Verifier] = []
    try:
        server.wait_started()
        status, tokens = request(server.url("/authorization/registration"), USER)
        assert status == 200, tokens
        assert isinstance(tokens, dict)
        checkers = verifiers(verifier_tools, issuer, 60)
        for checker in checkers:
            verdict = checker.check(tokens["access"])
            assert verdict["ok"] is True, (checker.name, verdict)
            refused = checker.check(tokens["refresh"])  # no aud: not an access token
            assert refused["ok"] is False, (checker.name, refused)
            assert checker.check(tokens["access"][:-4] + "AAAA")["ok"] is False
    finally:
        for checker in checkers:
            checker.close()
        server.stop()


def test_with_no_audience_a_refresh_token_is_still_refused(tmp_path, verifier_tools):
    """jwt.audience unset, verifiers checking signature and issuer only: the refresh token
    is signed with no published key, so neither takes it for an access token (item 11)."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    server = Server(
        tmp_path,
        port=port,
        VHOD_SERVER__DATA_DIR=str(tmp_path / "data"),
        VHOD_STORAGE__URL=f"sqlite:///{tmp_path / 'data' / 'vhod.db'}",
        VHOD_JWT__ISSUER=issuer,
        VHOD_PASSWORDS__BCRYPT_ROUNDS="4",
    )
    checkers: list[Verifier] = []
    try:
        server.wait_started()
        status, tokens = request(server.url("/authorization/registration"), USER)
        assert status == 200 and isinstance(tokens, dict), tokens
        checkers = verifiers(verifier_tools, issuer, 60, audience="")
        for checker in checkers:
            assert checker.check(tokens["access"])["ok"] is True, checker.name
            refused = checker.check(tokens["refresh"])
            assert refused["ok"] is False, (checker.name, refused)
    finally:
        for checker in checkers:
            checker.close()
        server.stop()


@pytest.fixture(params=["sqlite", "mongo-wire"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared' / 'vhod.db'}"
        return
    url = with_database(request.getfixturevalue("mongo_url"), f"vhod_keys_{uuid.uuid4().hex[:12]}")
    yield url
    client: MongoClient[dict[str, Any]] = MongoClient(url)
    client.drop_database(url.rsplit("/", 1)[1])
    client.close()


def test_rotations_on_two_instances_are_followed_with_no_failed_check(
    tmp_path, verifier_tools, storage_url
):
    port_a, port_b = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port_a}"  # behind one load balancer: one public URL
    env = {
        "VHOD_STORAGE__URL": storage_url,
        "VHOD_JWT__KEY_ENCRYPTION_KEY": KEK,
        "VHOD_JWT__ISSUER": issuer,
        "VHOD_JWT__AUDIENCE": AUDIENCE,
        # Seconds instead of days: each key signs 6 s, published 2 s before it signs, which
        # leaves 4 s after a scheduled rotation to rotate by hand in between. Operators
        # cannot set a lead under 60 s (stock verifiers refetch every 30 s at most): vhod
        # starts through SHORT_LEAD, and the verifiers keep the JWKS 1 s only.
        "VHOD_JWT__ROTATION_INTERVAL": "6",
        "VHOD_JWT__ROTATION_LEAD": "2",
        "VHOD_JWT__ACCESS_TTL": "40",
        "VHOD_JWT__REFRESH_TTL": "60",
        "VHOD_PASSWORDS__ALGORITHM": "bcrypt",
        "VHOD_PASSWORDS__BCRYPT_ROUNDS": "4",
        "VHOD_LIMITS__HASH_WORKERS": "1",
    }
    a = Server(
        tmp_path, port=port_a, script=SHORT_LEAD, VHOD_SERVER__DATA_DIR=str(tmp_path / "a"), **env
    )
    b = None
    checkers: list[Verifier] = []
    try:
        a.wait_started(timeout=30)
        b = Server(
            tmp_path,
            port=port_b,
            script=SHORT_LEAD,
            VHOD_SERVER__DATA_DIR=str(tmp_path / "b"),
            **env,
        )
        b.wait_started(timeout=30)
        status, tokens = request(a.url("/authorization/registration"), USER)
        assert status == 200 and isinstance(tokens, dict), tokens
        first = tokens["access"]
        checkers = verifiers(verifier_tools, issuer, 1)  # the JWKS says max-age=1
        seen: dict[str, int] = {}
        rotated_by_hand = False
        # Until the first key, the scheduled successor and the one rotated by hand in between
        # have each signed a token that both verifiers accepted from both instances.
        deadline = time.monotonic() + 40
        while len(seen) < 3:
            assert time.monotonic() < deadline, f"the keys did not rotate: {seen}"
            for instance in (a, b):
                query = "/validate/jwt/refresh?refresh=" + tokens["refresh"]
                status, body = request(instance.url(query))
                assert status == 200, body
                assert isinstance(body, dict)
                for checker in checkers:
                    verdict = checker.check(body["access"])
                    assert verdict["ok"] is True, (checker.name, verdict, instance.port)
                    seen[verdict["kid"]] = seen.get(verdict["kid"], 0) + 1
            if not rotated_by_hand and len(seen) == 2:
                # The scheduled successor signs: the next one is 4 s from being published.
                rotate = subprocess.run(
                    [sys.executable, str(SHORT_LEAD), "keys", "rotate"],
                    cwd=tmp_path,
                    env=clean_env(VHOD_SERVER__DATA_DIR=str(tmp_path / "cli"), **env),
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert rotate.returncode == 0, rotate.stderr
                assert "a new key was added" in rotate.stdout, rotate.stdout
                rotated_by_hand = True
            time.sleep(0.2)
        assert rotated_by_hand and len(seen) >= 3, seen  # the first key and two rotations
        # The first token, signed by a retired key, still verifies until it expires.
        for checker in checkers:
            assert checker.check(first)["ok"] is True, checker.name
        for instance in (a, b):
            assert request(instance.url("/validate/jwt/access?access=" + first)) == (200, True)
        listing = subprocess.run(
            [sys.executable, str(SHORT_LEAD), "keys", "list"],
            cwd=tmp_path,
            env=clean_env(VHOD_SERVER__DATA_DIR=str(tmp_path / "cli"), **env),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listing.returncode == 0, listing.stderr
        stored = [line.split()[0] for line in listing.stdout.splitlines()[1:]]
        # One key per rotation, however many instances rotated at once: every stored key
        # signed tokens here, except at most the one waiting to sign.
        assert len(stored) == len(set(stored))
        assert len(set(stored) - set(seen)) <= 1, (stored, seen)
    finally:
        for checker in checkers:
            checker.close()
        for instance in (b, a):
            if instance is not None:
                instance.stop()
