"""Secrets out of URLs and messages: a database URL's password and secret options, and the
values of secret query parameters in logged request URIs."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, unquote_plus, urlencode

# MongoDB URL options whose values are secrets (a key file's password, AWS session tokens).
_SECRET_OPTION = re.compile(
    r"([?&;](?:tlsCertificateKeyFilePassword|authMechanismProperties|password)=)([^&;]*)",
    re.IGNORECASE,
)


def redact_url(url: str) -> str:
    """A URL without its password or secret options, for logs and --check-config.

    A password may hold an unescaped "/", "@", "?" or "#": everything up to the last "@" is
    taken as the credentials, so no part of one can show. A "@" later in the URL (an option
    value) costs only the host part of the output, never the secrecy of the password.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() == "sqlite":
        return url
    if "@" in rest:
        credentials, _, rest = rest.rpartition("@")
        user, colon, _ = credentials.partition(":")
        rest = f"{user}:***@{rest}" if colon else f"{credentials}@{rest}"
    return f"{scheme}://" + _SECRET_OPTION.sub(r"\1***", rest)


def redact_text(text: str, url: str) -> str:
    """`text` (a driver's error message, say) without `url`'s password in any spelling."""
    text = text.replace(url, redact_url(url))
    for secret in _url_secrets(url):
        text = text.replace(secret, "***")
    return text


def _url_secrets(url: str) -> list[str]:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() == "sqlite":
        return []
    found = []
    if "@" in rest:
        password = rest.rpartition("@")[0].partition(":")[2]
        found.append(password)
    found += [match.group(2) for match in _SECRET_OPTION.finditer(rest)]
    found = [secret for secret in found if secret]
    found += [unquote(secret) for secret in found] + [unquote_plus(secret) for secret in found]
    # The longest first, so that a shorter spelling never leaves part of a longer one.
    return sorted({secret for secret in found if secret}, key=len, reverse=True)


# A query parameter whose lower-cased name contains one of these never shows its value in a
# log line (AP3, AP7). A substring rule, so that `client_secret`, `id_token`, `new_password`
# or a plugin's `otp_code` are caught without being listed one by one.
SECRET_NAME_PARTS = (
    "access",
    "refresh",
    "token",
    "code",
    "password",
    "secret",
    "state",
    "device_id",
    "verifier",
    "assertion",
    "passkey",
    "session",
    "key",
    "otp",
    "query",  # the admin search: an email or a phone number (PII, not a secret)
)


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in SECRET_NAME_PARTS)


def redact_uri(uri: str) -> str:
    """The request URI with the values of secret query parameters replaced by `***`."""
    path, sep, query = uri.partition("?")
    if not sep:
        return uri
    pairs = parse_qsl(query, keep_blank_values=True)
    safe = [(k, "***" if is_secret_name(k) else v) for k, v in pairs]
    return f"{path}?{urlencode(safe, safe='*')}"


class RedactedUri:
    """A URI that is redacted when a log handler formats it, which may be off the event loop.

    Every handler (the batching writer thread, a test's capture) gets the redacted text: the
    raw URI is reachable only through the attribute, never through str() or repr().
    """

    __slots__ = ("uri",)

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __str__(self) -> str:
        return redact_uri(self.uri)

    __repr__ = __str__
