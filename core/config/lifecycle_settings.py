"""Settings of the account lifecycle: the email and SMS channels, the CAPTCHA and the code
rules. Sections of the settings table (core.config.settings), read by core.config like every
other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.config.settings import POSITIVE, Check, between, setting, starts_with

SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")
LANGUAGES = ("ru", "en")


def _smtp_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in SMTP_SCHEMES and bool(parts.hostname)


@dataclass(frozen=True)
class EmailConfig:
    """One-time codes by email; without smtp_url the email code routes answer 503
    delivery_not_configured."""

    smtp_url: str | None = setting(
        None,
        "smtp://user:password@host:587 (STARTTLS when offered), smtp+starttls://… (STARTTLS"
        " required), smtps://host:465; null: no email channel",
        check=Check(_smtp_url, "must look like smtp://user:password@host:587"),
    )
    from_: str = setting("", 'the From address, e.g. "vhod <no-reply@example.com>"')
    timeout: float = setting(
        10.0, "seconds for the whole SMTP conversation, then 502", check=POSITIVE
    )
    language: str = setting(
        "ru", "ru or en, when a request's Accept-Language names neither", choices=LANGUAGES
    )
    templates_dir: str | None = setting(
        None,
        "a folder whose reset.ru.txt, verify.en.txt, sms.ru.txt … replace the built-in"
        " templates (core/templates) by name",
    )


@dataclass(frozen=True)
class SmsConfig:
    """One-time codes by SMS and other phone channels."""

    sender: str | None = setting(
        None,
        'null: none; http: POST JSON {"to", "text"} to url; or the name of a plugin of the'
        " vhod.senders group",
    )
    url: str | None = setting(None, "the gateway's URL for the http sender")
    secret: str | None = setting(
        None, "sent in secret_header so the gateway knows the caller", secret=True
    )
    secret_header: str = setting("X-Vhod-Secret", "the header that carries secret")
    timeout: float = setting(10.0, "seconds for the gateway to answer, then 502", check=POSITIVE)
    language: str = setting("ru", "ru or en", choices=LANGUAGES)
    channels: list[dict[str, Any]] = setting(
        [],
        "phone channels in order, each tried until one takes the code: {type:"
        " telegram_gateway, token}, {type: smsru, api_id}, {type: smsc, login, password |"
        " apikey}, {type: sender} (sms.sender's place; else it goes last)",
    )
    fallback_deadline: float = setting(
        20.0, "seconds for the whole chain of channels, then 502", check=POSITIVE
    )
    foreign_messengers: bool = setting(
        True, "false: no Telegram Gateway (operators bound by 41-FZ)"
    )
    allowed_regions: list[str] = setting(
        [], "ISO codes of the regions phone codes go to; []: the default region"
    )
    per_number_per_hour: int = setting(
        3,
        "sign-in codes to one number per hour (budgets against SMS pumping, shared by every"
        " instance through the store)",
        check=POSITIVE,
    )
    per_number_per_day: int = setting(10, "sign-in codes to one number per day", check=POSITIVE)
    per_client_per_hour: int = setting(
        10,
        "sign-in codes asked for from one client address per hour (IPv6: per limits.ipv6_prefix)",
        check=POSITIVE,
    )
    per_prefix_per_hour: int = setting(
        100,
        "sign-in codes to one number prefix (country code + prefix_digits) per hour",
        check=POSITIVE,
    )
    prefix_digits: int = setting(
        3, "digits of a number prefix after the country code", check=POSITIVE
    )
    daily_limit: int | None = setting(
        None,
        "text messages a day for the whole server, then 503; null: no cap",
        check=Check(lambda v: v > 0, "must be greater than 0, or null for no cap"),
    )


@dataclass(frozen=True)
class CaptchaConfig:
    """Yandex SmartCaptcha on /authorization/code/send."""

    provider: str | None = setting(None, "smartcaptcha, or null: none", choices=("smartcaptcha",))
    server_key: str | None = setting(None, "the captcha's server key", secret=True)
    url: str = setting(
        "https://smartcaptcha.yandexcloud.net",
        "SmartCaptcha's address",
        check=starts_with("https://", "http://", says="must be an http(s) URL"),
    )
    required: str = setting(
        "auto",
        "always, or auto: once a client or a number prefix has used `share` of its hourly budget",
        choices=("always", "auto"),
    )
    share: float = setting(
        0.5,
        "with required: auto, the share of a budget after which a CAPTCHA is asked for",
        check=Check(lambda v: 0 < v <= 1, "must be above 0 and at most 1"),
    )
    fail_open: bool = setting(
        False, "SmartCaptcha not answering: false refuses the code, true sends it"
    )
    timeout: float = setting(5.0, "seconds for SmartCaptcha to answer", check=POSITIVE)


@dataclass(frozen=True)
class AccountsConfig:
    """Account rules and one-time codes."""

    require_verified_email: bool = setting(
        False,
        "true: registration sends a code, and until it is confirmed the account's sessions"
        " only confirm it (login and refresh: 403 unverified_email)",
    )
    code_length: int = setting(6, "digits of a one-time code", check=between(4, 10))
    code_ttl: int = setting(900, "seconds a code works (15 minutes)", check=POSITIVE)
    code_max_attempts: int = setting(5, "wrong tries before a code is void", check=POSITIVE)
    code_sends_per_hour: int = setting(
        5, "codes to one address (known or not) per hour", check=POSITIVE
    )
    code_sends_per_client_per_hour: int = setting(
        30, "codes asked for from one client address per hour", check=POSITIVE
    )
    code_sign_up: bool = setting(
        False,
        "true: a right sign-in code for an address without an account makes one"
        " (/authorization/code/login)",
    )
    email_code_sign_in: bool = setting(False, "true: /authorization/code/send takes an email too")
    require_mfa: bool = setting(
        False,
        "true: an account without a second factor gets sessions that can only enrol one"
        " (403 mfa_required_enrolment elsewhere; docs/second-factors.md)",
    )
    totp_issuer: str = setting(
        "vhod",
        "the name authenticator apps show beside the account",
        check=Check(
            lambda name: 1 <= len(name) <= 64 and ":" not in name, "1-64 characters, without ':'"
        ),
    )


def email_from(config: Any) -> str | None:
    """email.from holds an address when email.smtp_url is set."""
    if config.email.smtp_url is not None and "@" not in config.email.from_:
        return "email.from: an address is required with email.smtp_url"
    return None


def verified_email_needs_smtp(config: Any) -> str | None:
    """accounts.require_verified_email needs email.smtp_url."""
    if config.accounts.require_verified_email and config.email.smtp_url is None:
        return "accounts.require_verified_email: needs email.smtp_url to send codes"
    return None


def http_sender_url(config: Any) -> str | None:
    """sms.sender: http needs an http(s) sms.url."""
    if config.sms.sender == "http" and not (config.sms.url or "").startswith(
        ("http://", "https://")
    ):
        return "sms.url: the http sender needs the gateway's http(s) URL"
    return None


def captcha_key(config: Any) -> str | None:
    """captcha.provider needs captcha.server_key."""
    if config.captcha.provider and not config.captcha.server_key:
        return "captcha.server_key: required with captcha.provider"
    return None


RULES = (email_from, verified_email_needs_smtp, http_sender_url, captcha_key)
