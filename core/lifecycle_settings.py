"""Settings of the account lifecycle: the email and SMS channels and the code rules.

Kept beside core.config, which builds and checks them like every other section.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class AccountsConfig:
    require_verified_email: bool = False  # sessions only confirm the email until it is
    code_length: int = 6
    code_ttl: int = 900  # seconds a code stays valid
    code_max_attempts: int = 5  # wrong tries before a code is void
    code_sends_per_hour: int = 5  # codes sent for one account or address
    code_sends_per_client_per_hour: int = 30  # codes requested from one client address


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
    return problems
