"""The lifecycle's plain parts: settings, --check-config masking, the sender plugins, the
language choice, and the codes as stored."""

from __future__ import annotations

from importlib import metadata

import pytest
import yaml

import core.infra.senders
from core.config import ConfigError, load_config
from core.config.lifecycle_settings import AccountsConfig, EmailConfig, SmsConfig
from core.domain.codes import Codes, code_hash
from core.infra.clock import FakeClock
from core.infra.delivery import Delivery, choose_language
from core.infra.senders import HttpSmsSender, load_sms_sender
from server import main

SENT: list[tuple[str, str]] = []


class RecordingSender:
    """A vhod.senders plugin: the factory is the class, called with the SmsConfig."""

    def __init__(self, config: SmsConfig) -> None:
        self.config = config

    async def send(self, phone: str, text: str) -> None:
        SENT.append((phone, text))


def test_email_from_is_read_from_the_file_and_the_environment(tmp_path):
    path = tmp_path / "vhod.yaml"
    path.write_text(yaml.safe_dump({"email": {"smtp_url": "smtp://mail:25", "from": "a@b.c"}}))
    assert load_config(path, environ={}).email.from_ == "a@b.c"
    config = load_config(path, environ={"VHOD_EMAIL__FROM": "x@y.z"})
    assert config.email.from_ == "x@y.z"


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"email.smtp_url": "http://mail", "email.from": "a@b.c"}, "email.smtp_url"),
        ({"email.smtp_url": "smtp://mail:25"}, "email.from"),
        ({"accounts.require_verified_email": True}, "accounts.require_verified_email"),
        ({"sms.sender": "http"}, "sms.url"),
        ({"accounts.code_length": 3}, "accounts.code_length"),
        ({"accounts.code_max_attempts": 0}, "accounts.code_max_attempts"),
        ({"email.language": "de"}, "email.language"),
    ],
)
def test_unusable_lifecycle_settings_name_their_key(settings, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, environ={}, overrides=settings)


def test_check_config_masks_the_smtp_password_and_the_sms_secret(tmp_path, capsys):
    path = tmp_path / "vhod.yaml"
    settings = {
        "server": {"data_dir": str(tmp_path)},
        "email": {"smtp_url": "smtps://vhod:p%40ss-w0rd@mail.example.com", "from": "a@b.c"},
        "sms": {"sender": "http", "url": "https://sms.example.com/send", "secret": "s3cr3t-sms"},
    }
    path.write_text(yaml.safe_dump(settings))
    assert main(["--config", str(path), "--check-config"]) == 0
    out = capsys.readouterr().out
    assert "p%40ss-w0rd" not in out and "p@ss-w0rd" not in out and "s3cr3t-sms" not in out
    printed = yaml.safe_load(out)
    assert printed["email"]["smtp_url"] == "smtps://vhod:***@mail.example.com"
    assert printed["email"]["from"] == "a@b.c"
    assert printed["sms"]["secret"] == "***"


def test_an_unknown_sender_stops_check_config(tmp_path, capsys):
    path = tmp_path / "vhod.yaml"
    path.write_text(yaml.safe_dump({"sms": {"sender": "no-such-gateway"}}))
    assert main(["--config", str(path), "--check-config"]) == 2
    assert "sms.sender" in capsys.readouterr().err


def test_a_sender_plugin_comes_from_its_entry_point(monkeypatch):
    plugin = metadata.EntryPoint(
        name="recording",
        value=f"{__name__}:RecordingSender",
        group=core.infra.senders.SENDER_GROUP,
    )

    def entry_points(*, group: str):
        return [plugin] if group == core.infra.senders.SENDER_GROUP else []

    monkeypatch.setattr(core.infra.senders.metadata, "entry_points", entry_points)
    sender = load_sms_sender(SmsConfig(sender="recording"))
    assert isinstance(sender, RecordingSender)
    assert isinstance(load_sms_sender(SmsConfig(sender="http", url="http://x/")), HttpSmsSender)
    assert load_sms_sender(SmsConfig()) is None


async def test_delivery_through_a_plugin_uses_the_sms_template():
    SENT.clear()
    delivery = Delivery(EmailConfig(), SmsConfig(), sms_sender=RecordingSender(SmsConfig()))
    assert not delivery.configured("email") and delivery.configured("phone")
    await delivery.send_code("phone", "+79161234567", "verify", "123456", 15, "en")
    assert SENT == [("+79161234567", "Code: 123456. Valid for 15 min. Do not share it.")]


def test_operator_templates_replace_the_built_in_ones(tmp_path):
    (tmp_path / "reset.en.txt").write_text("Subject: Reset $code\n\nUse $code within $minutes.")
    delivery = Delivery(EmailConfig(templates_dir=str(tmp_path)), SmsConfig())
    assert delivery.templates.email("reset", "en", code="1", minutes="15") == (
        "Reset 1",
        "Use 1 within 15.",
    )
    subject, _ = delivery.templates.email("reset", "ru", code="1", minutes="15")
    assert "сброса пароля" in subject  # no file of the operator's: the built-in one


@pytest.mark.parametrize(
    ("header", "language"),
    [(None, "ru"), ("en-US,en;q=0.9", "en"), ("de, en;q=0.5", "en"), ("fr", "ru"), ("RU", "ru")],
)
def test_the_language_is_the_first_supported_one_asked_for(header, language):
    assert choose_language(header, "ru") == language


async def test_codes_are_digits_and_only_their_keyed_hash_is_stored(store):
    codes = Codes(store, AccountsConfig(code_length=8), b"k" * 32, clock=FakeClock())
    to = "email:ann@example.com"
    code = await codes.issue("verify_email:u1", "u1", to)
    assert len(code) == 8 and code.isdigit()
    stored = await store.try_code("verify_email:u1", codes.clock(), 5)
    assert stored is not None and code not in stored.code_hash
    assert stored.code_hash == code_hash(b"k" * 32, "verify_email:u1", code, to)
    assert code_hash(b"k" * 32, "verify_email:u2", code, to) != stored.code_hash  # its key's
    assert code_hash(b"j" * 32, "verify_email:u1", code, to) != stored.code_hash  # keyed
    other = "phone:+79161234567"
    assert code_hash(b"k" * 32, "verify_email:u1", code, other) != stored.code_hash  # its address
