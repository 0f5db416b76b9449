"""The files in deploy/ work as shipped: systemd accepts the unit, nginx accepts the proxy
configuration and, running it, serves vhod over TLS and keeps /admin/ and /metrics to the
local allow-list. Each needs its tool (Debian's systemd and nginx): without it the test
skips, except in CI, where .ci/run installs them and a missing one fails."""

from __future__ import annotations

import datetime
import http.client
import json
import re
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server import parse_args
from tests.processes import Child, Server, accepts_connections, free_port, missing_tool

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "vhod.service"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
INSTALLED_COMMAND = "/opt/vhod/bin/vhod"


def tool(name: str, *folders: str) -> str:
    for folder in ("", *folders):
        found = shutil.which(name, path=folder or None)
        if found:
            return found
    missing_tool(f"{name} is missing: install Debian's {name.split('-')[0]} package")
    raise AssertionError  # missing_tool skips or fails


# ---- systemd -------------------------------------------------------------------------------


def unit_lines(key: str) -> list[str]:
    return [
        line.split("=", 1)[1]
        for line in UNIT.read_text().splitlines()
        if line.startswith(f"{key}=")
    ]


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    analyze = tool("systemd-analyze", "/usr/bin", "/bin")
    # The unit runs vhod where the install lines at its top put it, /opt/vhod; verify checks
    # that the command exists, so a stand-in takes that place in a copy of the unit.
    stand_in = tmp_path / "opt" / "vhod" / "bin" / "vhod"
    stand_in.parent.mkdir(parents=True)
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "vhod.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_COMMAND, str(stand_in)))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    # Unknown keys and bad values are only warnings (exit 0): any output is a finding.
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), (
        done.stdout + done.stderr
    )


def test_the_unit_keeps_state_in_var_lib_vhod_and_suggests_no_hmac_secret():
    text = UNIT.read_text()
    assert unit_lines("StateDirectory") == ["vhod"]
    environment = unit_lines("Environment")
    assert "VHOD_SERVER__DATA_DIR=/var/lib/vhod" in environment
    assert "VHOD_STORAGE__URL=sqlite:////var/lib/vhod/vhod.db" in environment
    # A configured jwt.secret would make a new install sign with HS256, and publish no keys.
    assert "VHOD_JWT__SECRET" not in text and "HS256" not in text
    assert "ReadWritePaths" not in text  # ProtectSystem=strict leaves StateDirectory writable


def test_the_unit_runs_commands_and_flags_the_server_knows():
    commands = [line.split() for line in unit_lines("ExecStart") + unit_lines("ExecStartPre")]
    assert len(commands) == 2
    for command in commands:
        assert command[0] == INSTALLED_COMMAND
        parse_args(command[1:])  # argparse exits on an unknown flag


# ---- nginx ---------------------------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "auth.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("auth.example.com")]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def nginx_setup(tmp_path: Path, *, vhod_port: int, http_port: int, https_port: int) -> Path:
    """A main configuration that includes deploy/nginx.conf as shipped, but for what only a
    real host has: its certificate paths (a self-signed pair made here), its ports and
    vhod's port. Everything nginx writes stays in `tmp_path`."""
    cert, key = self_signed(tmp_path)
    site = NGINX_CONF.read_text()
    replaced = {
        "/etc/letsencrypt/live/auth.example.com/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/auth.example.com/privkey.pem": str(key),
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "server 127.0.0.1:8888;": f"server 127.0.0.1:{vhod_port};",
    }
    for old, new in replaced.items():
        assert site.count(old) == 1, old
        site = site.replace(old, new)
    site, listens = re.subn(r"listen 443 ssl\b", f"listen 127.0.0.1:{https_port} ssl", site)
    assert listens == 1
    (tmp_path / "vhod.conf").write_text(site)
    temp = {kind: tmp_path / kind for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for folder in temp.values():
        folder.mkdir()
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"daemon off;\nmaster_process on;\nworker_processes 1;\npid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        + "".join(f"    {kind}_temp_path {folder};\n" for kind, folder in temp.items())
        + f"    include {tmp_path}/vhod.conf;\n}}\n"
    )
    return main


def nginx_binary() -> str:
    return tool("nginx", "/usr/sbin", "/sbin")


def test_nginx_t_accepts_the_proxy_configuration(tmp_path):
    nginx = nginx_binary()
    main = nginx_setup(tmp_path, vhod_port=8888, http_port=free_port(), https_port=free_port())
    done = subprocess.run(
        [nginx, "-t", "-p", f"{tmp_path}/", "-e", f"{tmp_path}/error.log", "-c", str(main)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr and "test is successful" in done.stderr
    assert "[warn]" not in done.stderr and "[emerg]" not in done.stderr, done.stderr


def https_get(port: int, path: str, cafile: Path, *, source: str) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(cafile))
    context.check_hostname = False  # the certificate names auth.example.com, not 127.0.0.1
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=context, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request("GET", path, headers={"Host": "auth.example.com"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.skipif(sys.platform != "linux", reason="127.0.0.2 is a local address on Linux")
def test_nginx_proxies_vhod_and_keeps_admin_and_metrics_local(tmp_path):
    nginx = nginx_binary()
    vhod = Server(tmp_path, VHOD_SERVER__DATA_DIR=str(tmp_path / "data"))
    https_port = free_port()
    proxy = None
    try:
        vhod.wait_started()
        main = nginx_setup(
            tmp_path, vhod_port=vhod.port, http_port=free_port(), https_port=https_port
        )
        proxy = Child(
            [nginx, "-p", f"{tmp_path}/", "-e", f"{tmp_path}/error.log", "-c", str(main)],
            tmp_path / "nginx.out",
        )
        proxy.wait_until(lambda: accepts_connections(https_port), 20, "nginx")
        cert = tmp_path / "fullchain.pem"
        # Any address may reach the API; 127.0.0.2 stands for a client elsewhere.
        status, body = https_get(https_port, "/healthz", cert, source="127.0.0.2")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        for path in ("/metrics", "/admin/users?email=ann@example.com"):
            assert https_get(https_port, path, cert, source="127.0.0.2")[0] == 403, path
        # From the allow-list, the request reaches vhod, which answers for itself.
        status, body = https_get(https_port, "/metrics", cert, source="127.0.0.1")
        assert status == 200 and b"vhod_http_requests_total" in body
        status, body = https_get(https_port, "/admin/users", cert, source="127.0.0.1")
        assert status in (401, 404) and json.loads(body)["error"], body
    finally:
        if proxy is not None:
            proxy.stop()
        vhod.stop()
