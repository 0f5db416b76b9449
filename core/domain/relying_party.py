"""The WebAuthn relying party from the settings: its id (a domain) and the origins whose
pages may make and use its passkeys. Checked at start, so that a wrong setting stops the
server instead of failing every ceremony."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from core.config.config_sections import WebauthnConfig
from core.infra.net import normal_origin


@dataclass(frozen=True)
class RelyingParty:
    rp_id: str
    name: str
    origins: tuple[str, ...]


def _covers(rp_id: str, host: str) -> bool:
    """Whether a page on `host` may use passkeys of `rp_id` (the WebAuthn rule: the same
    domain or one under it)."""
    return host == rp_id or host.endswith("." + rp_id)


def relying_party(config: WebauthnConfig, public_url: str) -> RelyingParty:
    """ValueError names the setting that is wrong."""
    rp_id = config.rp_id
    if rp_id is None:
        rp_id = urlsplit(public_url).hostname or ""
    rp_id = rp_id.strip().lower().rstrip(".")
    if not rp_id or any(c in rp_id for c in "/:@?#[] ") or not rp_id.isascii():
        raise ValueError(
            f"webauthn.rp_id: {config.rp_id or public_url!r} gives no domain such as"
            " example.com (no scheme, port or path; an international name in its xn-- form)"
        )
    origins = []
    for entry in config.origins or [public_url]:
        try:
            origin = normal_origin(entry)
        except ValueError as exc:
            raise ValueError(str(exc).replace("server.cors_origins", "webauthn.origins")) from exc
        host = urlsplit(origin).hostname or ""
        if not _covers(rp_id, host) and not config.origins:
            raise ValueError(
                f"webauthn.rp_id: {rp_id} does not cover server.public_url's host {host!r};"
                " list the front-end origins in webauthn.origins"
            )
        if not _covers(rp_id, host):
            raise ValueError(
                f"webauthn.origins: {entry!r} is not on {rp_id} or a domain under it, so a"
                " browser there cannot use its passkeys (webauthn.rp_id)"
            )
        origins.append(origin)
    if not config.rp_name.strip():
        raise ValueError("webauthn.rp_name: must not be empty")
    return RelyingParty(rp_id, config.rp_name, tuple(dict.fromkeys(origins)))
