"""Settings of the account lifecycle: the email and SMS channels and the code rules.

Kept beside core.config, which builds and checks them like every other section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")
LANGUAGES = ("ru", "en")


@dataclass(frozen=True)
class EmailConfig:
    # smtp://user:password@host:587 (STARTTLS when the server offers it),
    # smtp+starttls:// (STARTTLS required), smtps://host:465 (TLS from the start).
    # None: no email channel; the routes that need one answer 503.
    smtp_url: str | None = None
    from_: str = ""  # the From address, `email.from` in the file
    timeout: float = 10.0  # seconds for the whole SMTP conversation
    language: str = "ru"  # of the messages: ru or en (a request's Accept-Language wins)
    templates_dir: str | None = None  # files here replace the built-in templates by name


@dataclass(frozen=True)
class SmsConfig:
    # None: no SMS channel; "http": POST JSON to `url`; or a plugin of vhod.senders.
    sender: str | None = None
    url: str | None = None
    secret: str | None = None  # sent in `secret_header` so the gateway knows it is vhod
    secret_header: str = "X-Vhod-Secret"
    timeout: float = 10.0
    language: str = "ru"
    # Phone channels in order (telegram_gateway, smsru, smsc; `sender` places sms.sender):
    # a message goes through the first that takes it. Secrets are masked when printed.
    channels: list[dict[str, Any]] = field(default_factory=list)
    fallback_deadline: float = 20.0  # seconds for the whole chain, fallbacks included
    foreign_messengers: bool = True  # false: no Telegram Gateway (operators bound by 41-FZ)
    # Code sign-in by phone, against SMS pumping (core.code_budgets):
    allowed_regions: list[str] = field(default_factory=list)  # ISO codes; []: default region
    per_number_per_hour: int = 3
    per_number_per_day: int = 10
    per_client_per_hour: int = 10  # per client address (IPv6: per limits.ipv6_prefix)
    per_prefix_per_hour: int = 100  # per number prefix (country code + prefix_digits)
    prefix_digits: int = 3
    daily_limit: int | None = None  # text messages a day for the whole server; None: no cap


@dataclass(frozen=True)
class CaptchaConfig:
    provider: str | None = None  # smartcaptcha (Yandex SmartCaptcha), or None: no CAPTCHA
    server_key: str | None = None
    url: str = "https://smartcaptcha.yandexcloud.net"
    required: str = "auto"  # always | auto: once a client or prefix used `share` of its budget
    share: float = 0.5
    fail_open: bool = False  # the CAPTCHA service not answering: false refuses the code
    timeout: float = 5.0


@dataclass(frozen=True)
class AccountsConfig:
    require_verified_email: bool = False  # sessions only confirm the email until it is
    code_length: int = 6
    code_ttl: int = 900  # seconds a code stays valid
    code_max_attempts: int = 5  # wrong tries before a code is void
    code_sends_per_hour: int = 5  # codes sent for one account or address
    code_sends_per_client_per_hour: int = 30  # codes requested from one client address
    code_sign_up: bool = False  # a right sign-in code for a new address makes an account
    email_code_sign_in: bool = False  # /authorization/code/send takes an email too
    require_mfa: bool = False  # sessions of an account without a second factor only enrol one
    totp_issuer: str = "vhod"  # the name authenticator apps show beside the account


def check_lifecycle(email: EmailConfig, sms: SmsConfig, accounts: AccountsConfig) -> list[str]:
    """What is wrong with these sections, one message per key (empty when nothing is)."""
    problems = []
    if email.smtp_url is not None:
        parts = urlsplit(email.smtp_url)
        if parts.scheme not in SMTP_SCHEMES or not parts.hostname:
            problems.append("email.smtp_url: must look like smtp://user:password@host:587")
        if "@" not in email.from_:
            problems.append("email.from: an address is required with email.smtp_url")
    if accounts.require_verified_email and email.smtp_url is None:
        problems.append("accounts.require_verified_email: needs email.smtp_url to send codes")
    for path, language in (("email.language", email.language), ("sms.language", sms.language)):
        if language not in LANGUAGES:
            problems.append(f"{path}: must be ru or en")
    if sms.sender == "http" and not (sms.url or "").startswith(("http://", "https://")):
        problems.append("sms.url: the http sender needs the gateway's http(s) URL")
    if not 1 <= len(accounts.totp_issuer) <= 64 or ":" in accounts.totp_issuer:
        problems.append("accounts.totp_issuer: 1-64 characters, without ':'")
    if not 4 <= accounts.code_length <= 10:
        problems.append("accounts.code_length: must be between 4 and 10")
    for path, value in (
        ("email.timeout", email.timeout),
        ("sms.timeout", sms.timeout),
        ("accounts.code_ttl", accounts.code_ttl),
        ("accounts.code_max_attempts", accounts.code_max_attempts),
        ("accounts.code_sends_per_hour", accounts.code_sends_per_hour),
        ("accounts.code_sends_per_client_per_hour", accounts.code_sends_per_client_per_hour),
    ):
        if value <= 0:
            problems.append(f"{path}: must be greater than 0")
    problems.extend(_sms_problems(sms))
    return problems


def _sms_problems(sms: SmsConfig) -> list[str]:
    problems = []
    for path, value in (
        ("sms.fallback_deadline", sms.fallback_deadline),
        ("sms.per_number_per_hour", sms.per_number_per_hour),
        ("sms.per_number_per_day", sms.per_number_per_day),
        ("sms.per_client_per_hour", sms.per_client_per_hour),
        ("sms.per_prefix_per_hour", sms.per_prefix_per_hour),
        ("sms.prefix_digits", sms.prefix_digits),
    ):
        if value <= 0:
            problems.append(f"{path}: must be greater than 0")
    if sms.daily_limit is not None and sms.daily_limit <= 0:
        problems.append("sms.daily_limit: must be greater than 0, or null for no cap")
    if not all(isinstance(spec, dict) for spec in sms.channels):
        problems.append("sms.channels: each entry must be a mapping with a type")
    return problems


def check_captcha(captcha: CaptchaConfig) -> list[str]:
    problems = []
    if captcha.provider not in (None, "smartcaptcha"):
        problems.append("captcha.provider: must be smartcaptcha or null")
    if captcha.provider and not captcha.server_key:
        problems.append("captcha.server_key: required with captcha.provider")
    if captcha.required not in ("always", "auto"):
        problems.append("captcha.required: must be always or auto")
    if not 0 < captcha.share <= 1:
        problems.append("captcha.share: must be above 0 and at most 1")
    if captcha.timeout <= 0:
        problems.append("captcha.timeout: must be greater than 0")
    if not captcha.url.startswith(("https://", "http://")):
        problems.append("captcha.url: must be an http(s) URL")
    return problems
