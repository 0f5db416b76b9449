"""Email over TLS: implicit TLS (smtps://) and a required STARTTLS (smtp+starttls://), to a
real SMTP server on 127.0.0.1 whose certificate the test made and the client trusts."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fakes.channels import SmtpInbox

EMAIL = "ann@example.com"
USER = {"email": EMAIL, "phone_number": "+79161234567", "hash_password": "correct horse"}


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture(params=["smtps", "smtp+starttls"])
def tls_inbox(request, certificate, monkeypatch) -> Iterator[tuple[SmtpInbox, str]]:
    # The client verifies the server as it would any other: this CA is the one it trusts.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    context = server_context(certificate)
    if request.param == "smtps":
        inbox = SmtpInbox(implicit_tls=context).start()
    else:
        inbox = SmtpInbox(starttls=context).start()
    yield inbox, request.param
    inbox.stop()


@pytest.fixture
def config_overrides(tls_inbox):
    inbox, scheme = tls_inbox
    return {
        **inbox.config(),
        "email.smtp_url": f"{scheme}://127.0.0.1:{inbox.port}",
    }


async def test_the_code_goes_out_over_tls(api, tls_inbox):
    inbox, _ = tls_inbox
    assert (await api.post("/authorization/registration", json_body=USER)).status == 200
    sent = await api.post("/authorization/password/reset", json_body={"email": EMAIL})
    assert (sent.status, sent.body) == (200, True)
    assert inbox.code_for(EMAIL).isdigit()


async def test_a_certificate_the_client_does_not_trust_is_refused(api, tls_inbox, monkeypatch):
    inbox, _ = tls_inbox
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent")
    registered = await api.post("/authorization/registration", json_body=USER)
    assert registered.status == 200
    bearer = {"Authorization": f"Bearer {registered.body['access']}"}
    refused = await api.post("/authorization/verify/email", headers=bearer)
    assert (refused.status, refused.body["error"]) == (502, "delivery_failed")
    assert inbox.messages == []
