"""Delivering one-time codes: email over SMTP (aiosmtplib), and to phones through the chain
of phone channels (core.infra.phone_channels: the gateways of `sms.channels` and the
`sms.sender`, core.infra.senders). No code, address or message text is ever logged; a
failure says only which channel failed, and why in a word.
"""

from __future__ import annotations

import asyncio
import logging
import string
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiosmtplib

from core.config.lifecycle_settings import LANGUAGES, EmailConfig, SmsConfig
from core.domain.errors import ApiError
from core.infra.bundle import bundled
from core.infra.phone_channels import phone_chain

# DeliveryError stays importable from here: sender plugins were told to raise it from here.
from core.infra.senders import DeliveryError as DeliveryError
from core.infra.senders import SmsSender

log = logging.getLogger("vhod.delivery")

BUILTIN_TEMPLATES = bundled("core", "templates")
PURPOSES = ("reset", "verify", "delete", "signin")
CHANNELS = ("email", "phone")
_DEFAULT_PORTS = {"smtp": 587, "smtp+starttls": 587, "smtps": 465}


# Told the channel and the outcome (sent, refused, failed) of every code handed to one:
# the metrics hook.
DeliveryObserver = Callable[[str, str], None]


def delivery_not_configured(channel: str) -> ApiError:
    what = "email" if channel == "email" else "SMS"
    return ApiError(
        503, "delivery_not_configured", f"This server has no {what} channel configured."
    )


def delivery_failed(channel: str) -> ApiError:
    what = "mail server" if channel == "email" else "SMS gateway"
    return ApiError(
        502, "delivery_failed", f"The {what} did not take the message; no code was sent."
    )


def choose_language(accept_language: str | None, default: str) -> str:
    """The first of ru/en the client's Accept-Language names, else `default`."""
    for part in (accept_language or "").split(",")[:16]:
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return default


@dataclass(frozen=True)
class Templates:
    """Message texts by file name; a file in the operator's folder replaces the built-in."""

    folder: Path | None = None

    def text(self, name: str) -> string.Template:
        for folder in (self.folder, BUILTIN_TEMPLATES):
            if folder is not None and (folder / name).is_file():
                return string.Template((folder / name).read_text(encoding="utf-8"))
        raise FileNotFoundError(name)

    def email(self, purpose: str, language: str, **values: str) -> tuple[str, str]:
        """(subject, body) of the email for `purpose`: the file's first line is Subject:."""
        filled = self.text(f"{purpose}.{language}.txt").safe_substitute(values)
        head, _, body = filled.partition("\n")
        return head.removeprefix("Subject:").strip(), body.lstrip("\n")

    def sms(self, language: str, **values: str) -> str:
        return self.text(f"sms.{language}.txt").safe_substitute(values).strip()


class EmailSender:
    """Sends through the SMTP server of `email.smtp_url`, one connection per message."""

    def __init__(self, config: EmailConfig) -> None:
        assert config.smtp_url is not None
        parts = urlsplit(config.smtp_url)
        self.hostname = parts.hostname or "localhost"
        self.port = parts.port or _DEFAULT_PORTS[parts.scheme]
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.use_tls = parts.scheme == "smtps"
        # None: STARTTLS when the server offers it; True: refuse a server that does not.
        self.start_tls: bool | None = True if parts.scheme == "smtp+starttls" else None
        if self.use_tls:
            self.start_tls = False
        self.sender = config.from_
        self.timeout = config.timeout

    async def send(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        message.set_content(body)
        try:
            await asyncio.wait_for(
                aiosmtplib.send(
                    message,
                    hostname=self.hostname,
                    port=self.port,
                    username=self.username,
                    password=self.password,
                    use_tls=self.use_tls,
                    start_tls=self.start_tls,
                    timeout=self.timeout,
                ),
                self.timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # The class only: an SMTP reply may quote the recipient.
            refused = isinstance(
                exc, aiosmtplib.SMTPResponseException | aiosmtplib.SMTPRecipientsRefused
            )
            raise DeliveryError(type(exc).__name__, refused=refused) from exc


class Delivery:
    """Sends a code by email or to a phone, in the user's language, or says why it cannot."""

    def __init__(
        self,
        email: EmailConfig,
        sms: SmsConfig,
        *,
        sms_sender: SmsSender | None = None,
        on_delivery: DeliveryObserver | None = None,
    ) -> None:
        """`sms_sender`: the `sms.sender` already made (a test's), else `sms` loads it."""
        self.on_delivery = on_delivery
        self.email = EmailSender(email) if email.smtp_url else None
        # ValueError for a bad `sms.channels` entry or `sms.sender`.
        phone = phone_chain(sms, sender=sms_sender)
        if phone is not None and on_delivery is not None:
            # Each phone channel's attempt is counted under its own name (a chain tries
            # several for one code).
            phone.report = lambda name, outcome, reason: on_delivery(name, outcome)
        self.sms = phone
        self.email_language = email.language
        self.sms_language = sms.language
        self.templates = Templates(Path(email.templates_dir) if email.templates_dir else None)

    def is_messenger(self, taken_by: str) -> bool:
        """Whether the phone channel named `taken_by` is a messenger (a code there is an
        "otp", not an "sms", in RFC 8176's words)."""
        return self.sms is not None and taken_by in self.sms.messengers

    def first_is_messenger(self) -> bool:
        """Whether the first phone channel is a messenger: where a code most often goes."""
        return bool(self.sms and self.sms.names and self.is_messenger(self.sms.names[0]))

    def configured(self, channel: str) -> bool:
        return (self.email if channel == "email" else self.sms) is not None

    @property
    def channels(self) -> list[str]:
        """The channels with a sender, email and each phone channel by its name: the only
        values of the metrics' channel label."""
        return (["email"] if self.email else []) + (self.sms.names if self.sms else [])

    def require(self, channel: str) -> None:
        """503 delivery_not_configured when `channel` has no sender."""
        if not self.configured(channel):
            raise delivery_not_configured(channel)

    async def send_code(
        self,
        channel: str,
        address: str,
        purpose: str,
        code: str,
        minutes: int,
        accept_language: str | None = None,
    ) -> str:
        """Deliver `code`; the name of the channel that took it ("email", or a phone
        channel's); 502 delivery_failed when none did."""
        self.require(channel)
        values = {"code": code, "minutes": str(minutes)}
        try:
            if channel == "email":
                await self._mail(address, purpose, accept_language, values)
                return "email"
            assert self.sms is not None  # its channels report their own attempts
            language = choose_language(accept_language, self.sms_language)
            text = self.templates.sms(language, **values)
            return await self.sms.send_code(address, code, text, minutes * 60)
        except DeliveryError as exc:
            log.warning("delivery by %s failed: %s", channel, exc)
            raise delivery_failed(channel) from exc

    async def send_notice(
        self, address: str, purpose: str, accept_language: str | None = None, **values: str
    ) -> bool:
        """Email a notice (no code) for `purpose` (linked, unlinked): True when the mail
        server took it; False when no mail server is configured or it did not take it
        (logged, without the address): a notice never fails what it tells of."""
        if self.email is None:
            return False
        try:
            await self._mail(address, purpose, accept_language, values)
        except DeliveryError as exc:
            log.warning("a %s notice was not sent: %s", purpose, exc)
            return False
        return True

    async def _mail(
        self, address: str, purpose: str, accept_language: str | None, values: dict[str, str]
    ) -> None:
        """Email `purpose`'s template in the reader's language, counted as sent, refused
        or failed; DeliveryError when the mail server did not take it."""
        assert self.email is not None
        language = choose_language(accept_language, self.email_language)
        subject, body = self.templates.email(purpose, language, **values)
        try:
            await self.email.send(address, subject, body)
        except DeliveryError as exc:
            self._report("email", "refused" if exc.refused else "failed")
            raise
        self._report("email", "sent")

    def _report(self, channel: str, outcome: str) -> None:
        if self.on_delivery is not None:
            self.on_delivery(channel, outcome)
