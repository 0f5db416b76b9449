"""Sign-in through a provider: state and PKCE kept server-side, code exchange, provider accounts.

The provider objects (providers/) speak each provider's protocol; this module owns the flow
around them: a `state` is single-use, bound to one provider and expires after ten minutes
(OA1, OA4), and it lives in storage so that any instance can finish a flow another started.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit, urlunsplit

from core.accounts import Accounts, ProviderProfile
from core.clock import Clock, system_clock
from core.errors import ApiError, invalid_request
from core.events import security_event
from core.metrics import Metrics
from core.pkce import code_challenge, new_code_verifier, new_state
from storage.base import OAuthState, Store

STATE_TTL_SECONDS = 600


class Provider(Protocol):
    """What the flow needs of a provider (providers.base.OAuthProvider implements it)."""

    name: str
    prefix: str
    pkce: bool
    callback_params: tuple[str, ...]

    settings: Any  # providers.base.ProviderSettings: frontend_redirect is read here

    @property
    def configured(self) -> bool: ...

    def authorization_url(self, state: str, code_challenge: str | None) -> str: ...

    async def exchange(
        self, code: str, *, code_verifier: str | None, state: str, extra: dict[str, str]
    ) -> Any: ...

    async def fetch_profile(self, access_token: str) -> ProviderProfile: ...


@dataclass(frozen=True)
class Redirect:
    """The answer is a 302 to this URL."""

    url: str


def invalid_state() -> ApiError:
    return ApiError(400, "invalid_state", "The sign-in state is unknown, expired or already used.")


def not_configured(provider: Provider) -> ApiError:
    return ApiError(
        503,
        "provider_not_configured",
        f"Sign-in with '{provider.prefix}' is not configured on this server.",
    )


def code_fingerprint(code: str) -> str:
    """How a code is remembered between callback and get/token: never stored as it is."""
    return hashlib.sha256(code.encode()).hexdigest()


class SocialSignIn:
    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        *,
        metrics: Metrics | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.metrics = metrics or Metrics()
        self.clock = clock

    async def link(self, provider: Provider) -> str:
        """The provider's authorization URL for a fresh state (and PKCE verifier)."""
        self._require_configured(provider)
        state = new_state()
        verifier = new_code_verifier() if provider.pkce else None
        await self.store.put_state(
            OAuthState(
                state=state,
                provider=provider.name,
                expires_at=self.clock() + STATE_TTL_SECONDS,
                code_verifier=verifier,
            )
        )
        challenge = code_challenge(verifier) if verifier else None
        return provider.authorization_url(state, challenge)

    async def callback(self, provider: Provider, params: dict[str, str]) -> Redirect | dict:
        """Where the provider sends the browser back.

        With `frontend_redirect` configured, remember which state this code belongs to and
        send the browser on with the same parameters; otherwise exchange the code here.
        """
        self._require_configured(provider)
        if params.get("error"):
            state = params.get("state")
            if state:
                await self.store.take_state(provider.name, self.clock(), state=state)
            raise ApiError(
                400,
                _safe_code(params["error"]),
                params.get("error_description") or "The provider reported an error.",
            )
        code = _required(params, "code")
        state = _required(params, "state")
        if provider.settings.frontend_redirect:
            attached = await self.store.attach_code(
                state, provider.name, code_fingerprint(code), self.clock()
            )
            if not attached:
                raise invalid_state()
            return Redirect(_with_query(provider.settings.frontend_redirect, params))
        return await self.get_token(provider, code, state=state, params=params)

    async def get_token(
        self,
        provider: Provider,
        code: str,
        *,
        state: str | None,
        params: dict[str, str],
    ) -> dict[str, Any]:
        """Exchange a code for the provider's tokens, once per state."""
        self._require_configured(provider)
        extra = {name: _required(params, name) for name in provider.callback_params}
        fingerprint = code_fingerprint(code)
        if state:
            record = await self.store.take_state(provider.name, self.clock(), state=state)
        else:
            record = await self.store.take_state(provider.name, self.clock(), code_hash=fingerprint)
        if record is None or (record.code_hash and record.code_hash != fingerprint):
            raise invalid_state()
        tokens = await self._observed(
            provider,
            "token",
            provider.exchange(
                code, code_verifier=record.code_verifier, state=record.state, extra=extra
            ),
        )
        return {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expire_in": tokens.expires_in,
        }

    async def register(self, provider: Provider, access_token: str) -> dict[str, str]:
        self._require_configured(provider)
        profile = await self._observed(provider, "userinfo", provider.fetch_profile(access_token))
        return await self.accounts.register_with_provider(profile)

    async def login(self, provider: Provider, access_token: str) -> dict[str, str]:
        self._require_configured(provider)
        profile = await self._observed(provider, "userinfo", provider.fetch_profile(access_token))
        return await self.accounts.login_with_provider(profile)

    async def _observed(self, provider: Provider, call: str, pending: Any) -> Any:
        """Await a provider call, counting its outcome; faults and refusals are security
        events (AP4)."""
        try:
            result = await pending
        except ApiError as exc:
            self.metrics.provider_calls.labels(provider.name, call, exc.code).inc()
            event = {
                "invalid_provider_token": "provider_token_rejected",
                "provider_unavailable": "provider_fault",
                "invalid_grant": "provider_code_rejected",
            }.get(exc.code)
            if event:
                # The one log line of a provider failure; the description says what failed.
                security_event(event, provider=provider.name, call=call, reason=exc.description)
            raise
        self.metrics.provider_calls.labels(provider.name, call, "ok").inc()
        return result

    @staticmethod
    def _require_configured(provider: Provider) -> None:
        if not provider.configured:
            raise not_configured(provider)


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise invalid_request(f"The parameter '{name}' is required.")
    return value


def _safe_code(error: str) -> str:
    """The provider's error code, if it looks like one (it is echoed to the client)."""
    cleaned = "".join(ch for ch in error if ch.isalnum() or ch in "_-.")[:64]
    return cleaned or "access_denied"


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
