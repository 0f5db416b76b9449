"""Sign-in through a provider: state and PKCE kept server-side, code exchange, provider accounts.

The provider objects (providers/) speak each provider's protocol; this module owns the flow
around them: a `state` is bound to one provider, expires after ten minutes (OA1, OA4) and
lives in storage so that any instance can finish a flow another started. A state is spent
only by the exchange that succeeds, or by its own browser reporting an error (D13).

Binding to the browser (OA7, RFC 9700 §4.7): `/link?redirect=1` sets a cookie whose hash the
state keeps, and `callback` (or `get/token` before any callback) refuses the state without
it. A flow started by the JSON `/link` is bound when `get/token` presents its `state`; the
seed's code-only `get/token` is the unbound form, refused when `require_binding` is set.

Linking (core.domain.identities, docs/linking.md): a state made by `link/start` names the signed-in
user. Its callback never exchanges the code itself, as the browser that arrives there proves
nothing about that user: it goes on to `frontend_redirect`, and `get/token` finishes only
with that same user's access token, attaching the identity instead of answering tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any, Protocol

from core.domain.accounts import Accounts, ProviderProfile
from core.domain.errors import ApiError, invalid_request
from core.domain.event_types import EventType
from core.domain.events import security_event
from core.domain.pkce import code_challenge, new_code_verifier, new_state
from core.domain.social_callback import callback_error, forwarded, with_query
from core.domain.social_link import Linker, link_needs_the_caller
from core.infra.clock import Clock, system_clock
from core.infra.metrics import Metrics
from storage.base import OAuthState, Store

STATE_TTL_SECONDS = 600
# How long a provider token from our own exchange is remembered as ours: its expires_in,
# bounded; a token without one is remembered for an hour (the provider's own proof, where it
# has one, still works afterwards).
EXCHANGED_TOKEN_DEFAULT_SECONDS = 3600
EXCHANGED_TOKEN_MAX_SECONDS = 30 * 86_400
BINDING_COOKIE = "vhod_flow"
_STATE = re.compile(r"[A-Za-z0-9_-]{32,128}")  # what core.domain.pkce.new_state makes


class Provider(Protocol):
    """What the flow needs of a provider (providers.base.OAuthProvider implements it)."""

    name: str
    prefix: str
    pkce: bool
    public_url: str
    callback_params: tuple[str, ...]
    forwarded_params: tuple[str, ...]

    settings: Any  # providers.base.ProviderSettings: frontend_redirect is read here

    @property
    def configured(self) -> bool: ...

    def authorization_url(self, state: str, code_challenge: str | None) -> str: ...

    async def exchange(
        self, code: str, *, code_verifier: str | None, state: str, extra: dict[str, str]
    ) -> Any: ...

    async def fetch_profile(
        self, access_token: str, *, exchanged: bool = False, claims: Any = None
    ) -> ProviderProfile: ...

    async def ready(self) -> None: ...

    def check_callback(self, params: dict[str, str]) -> None: ...


@dataclass(frozen=True)
class Redirect:
    """The answer is a 302 to this URL."""

    url: str


@dataclass(frozen=True)
class BindingCookie:
    """The cookie `/link?redirect=1` sets: HttpOnly, SameSite=Lax (it must come back with
    the provider's top-level redirect), Secure when the public URL is https."""

    name: str
    value: str
    path: str
    secure: bool
    max_age: int = STATE_TTL_SECONDS


@dataclass(frozen=True)
class Link:
    url: str
    cookie: BindingCookie | None = None


def invalid_state(
    description: str = "The sign-in state is unknown, expired or already used.",
) -> ApiError:
    return ApiError(400, "invalid_state", description)


def other_browser() -> ApiError:
    return invalid_state("The sign-in was started in another browser.")


def not_configured(provider: Provider) -> ApiError:
    return ApiError(
        503,
        "provider_not_configured",
        f"Sign-in with '{provider.prefix}' is not configured on this server.",
    )


def code_fingerprint(code: str) -> str:
    """How a code is remembered between callback and get/token: never stored as it is."""
    return hashlib.sha256(code.encode()).hexdigest()


def token_fingerprint(token: str) -> str:
    """How a provider token from our own exchange is remembered: never stored as it is."""
    return hashlib.sha256(b"provider-token." + token.encode()).hexdigest()


def _binding_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class SocialSignIn:
    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        *,
        metrics: Metrics | None = None,
        clock: Clock = system_clock,
        require_binding: bool = False,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.require_binding = require_binding
        self.linker: Linker | None = None  # core.domain.identities, wired by server.build_services

    async def link(
        self, provider: Provider, *, bind_browser: bool = False, link_user: str | None = None
    ) -> Link:
        """The provider's authorization URL for a fresh state (and PKCE verifier); with
        `bind_browser`, also the cookie that binds the flow to this browser; with
        `link_user`, a link flow for that signed-in user."""
        await self._ready(provider)
        state = new_state()
        verifier = new_code_verifier() if provider.pkce else None
        cookie = None
        if bind_browser:
            cookie = BindingCookie(
                name=BINDING_COOKIE,
                value=new_state(),
                path=f"/{provider.prefix}/",
                secure=provider.public_url.startswith("https:"),
            )
        await self.store.put_state(
            OAuthState(
                state=state,
                provider=provider.name,
                expires_at=self.clock() + STATE_TTL_SECONDS,
                code_verifier=verifier,
                binding_hash=_binding_hash(cookie.value) if cookie else None,
                link_user=link_user,
            )
        )
        challenge = code_challenge(verifier) if verifier else None
        return Link(provider.authorization_url(state, challenge), cookie)

    async def callback(
        self, provider: Provider, params: dict[str, str], *, cookie: str | None = None
    ) -> Redirect | dict[str, Any]:
        """Where the provider sends the browser back.

        With `frontend_redirect` configured, remember which state this code belongs to and
        send the browser on (errors too, as `error` and a fixed description); otherwise
        exchange the code here."""
        await self._ready(provider)
        front_end = provider.settings.frontend_redirect
        try:
            return await self._callback(provider, params, cookie, front_end)
        except ApiError as exc:
            if not front_end or exc.status != 400:
                raise
            state = params.get("state")
            query = {"error": exc.code, "error_description": exc.description}
            if state and _STATE.fullmatch(state):
                query["state"] = state
            return Redirect(with_query(front_end, query))

    async def _callback(
        self, provider: Provider, params: dict[str, str], cookie: str | None, front_end: str | None
    ) -> Redirect | dict[str, Any]:
        if params.get("error"):
            await self._spend_if_owner(provider, params.get("state"), cookie)
            code, description = callback_error(params["error"])
            raise ApiError(400, code, description)
        provider.check_callback(params)
        code = _required(params, "code")
        record = await self._live_state(provider, _required(params, "state"))
        if record.binding_hash and not _cookie_matches(record, cookie):
            raise other_browser()
        if record.link_user and not front_end:
            # link/start refuses such a provider; its configuration changed since.
            raise invalid_request("Linking needs the provider's frontend_redirect.")
        if front_end:
            attached = await self.store.attach_code(
                record.state, provider.name, code_fingerprint(code), self.clock()
            )
            if not attached:  # a replayed callback, or another code for this state
                raise invalid_state()
            return Redirect(with_query(front_end, forwarded(provider, params)))
        return await self._redeem(provider, record, code, params)

    async def get_token(
        self,
        provider: Provider,
        code: str,
        *,
        state: str | None,
        params: dict[str, str],
        cookie: str | None = None,
        access: str | None = None,
    ) -> dict[str, Any]:
        """Exchange a code for the provider's tokens, once per state; for a link flow's
        state, link the identity to `access`'s user (who must be the one who started it)
        and answer the account's identities instead."""
        await self._ready(provider)
        fingerprint = code_fingerprint(code)
        if state:
            record = await self._live_state(provider, state)
            if record.code_hash and not hmac.compare_digest(record.code_hash, fingerprint):
                raise invalid_state()
            # A browser-started flow that skipped the callback proves its browser here.
            if record.binding_hash and not record.code_hash and not _cookie_matches(record, cookie):
                raise other_browser()
        else:
            found = await self.store.find_state_by_code(provider.name, fingerprint, self.clock())
            if found is None:
                raise invalid_state()
            record = found
            if self.require_binding and not record.binding_hash:
                raise invalid_request(
                    "The parameter 'state' is required: this server binds every sign-in to "
                    "the client that started it."
                )
        if record.link_user:
            return await self._redeem_link(provider, record, code, params, access)
        return await self._redeem(provider, record, code, params)

    async def _redeem_link(
        self,
        provider: Provider,
        record: OAuthState,
        code: str,
        params: dict[str, str],
        access: str | None,
    ) -> dict[str, Any]:
        """The caller first, so that nobody else's call spends the state."""
        if self.linker is None or record.link_user is None:
            raise invalid_state()
        if not access:
            raise link_needs_the_caller()
        if await self.linker.caller_id(access) != record.link_user:
            raise invalid_state("The link was started by another account.")
        tokens = await self._exchange(provider, record, code, params)
        pending = provider.fetch_profile(
            tokens.access_token, exchanged=True, claims=tokens.profile_claims
        )
        profile: ProviderProfile = await self._observed(provider, "userinfo", pending)
        return await self.linker.attach(record.link_user, profile)

    async def register(self, provider: Provider, access_token: str) -> dict[str, str]:
        profile = await self._profile(provider, access_token)
        return await self.accounts.register_with_provider(profile)

    async def login(self, provider: Provider, access_token: str) -> dict[str, str]:
        with self.accounts.counted_login(provider.name):
            profile = await self._profile(provider, access_token)
            return await self.accounts.login_with_provider(profile)

    async def profile_of(self, provider: Provider, access_token: str) -> ProviderProfile:
        """The owner of a provider token, proved as `login` proves it."""
        return await self._profile(provider, access_token)

    async def _profile(self, provider: Provider, access_token: str) -> ProviderProfile:
        """The token's owner. A token our own exchange obtained is ours by construction;
        any other needs the provider's proof (providers.binding)."""
        await self._ready(provider)
        kept = None  # our exchange's token: the claims kept with it ({} for most providers)
        if isinstance(access_token, str):
            fingerprint, now = token_fingerprint(access_token), self.clock()
            kept = await self.store.exchanged_token_claims(provider.name, fingerprint, now)
        pending = provider.fetch_profile(access_token, exchanged=kept is not None, claims=kept)
        profile: ProviderProfile = await self._observed(provider, "userinfo", pending)
        return profile

    async def _live_state(self, provider: Provider, state: str) -> OAuthState:
        if not _STATE.fullmatch(state):
            raise invalid_state()
        record = await self.store.find_state(provider.name, state, self.clock())
        if record is None:
            raise invalid_state()
        return record

    async def _spend_if_owner(
        self, provider: Provider, state: str | None, cookie: str | None
    ) -> None:
        """An error callback spends the state only from the browser that started it: anyone
        else could cancel someone's sign-in with a forged `?error=`."""
        if not state or not _STATE.fullmatch(state):
            return
        record = await self.store.find_state(provider.name, state, self.clock())
        if record is not None and record.binding_hash and _cookie_matches(record, cookie):
            await self.store.consume_state(provider.name, state)

    async def _redeem(
        self, provider: Provider, record: OAuthState, code: str, params: dict[str, str]
    ) -> dict[str, Any]:
        """The exchange; the state is spent only when it succeeds, and only once."""
        tokens = await self._exchange(provider, record, code, params)
        lifetime = tokens.expires_in or EXCHANGED_TOKEN_DEFAULT_SECONDS
        now = self.clock()
        await self.store.remember_exchanged_token(
            provider.name,
            token_fingerprint(tokens.access_token),
            now + min(max(lifetime, 1), EXCHANGED_TOKEN_MAX_SECONDS),
            claims=tokens.profile_claims,
        )
        return {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expire_in": tokens.expires_in,
        }

    async def _exchange(
        self, provider: Provider, record: OAuthState, code: str, params: dict[str, str]
    ) -> Any:
        tokens = await self._observed(
            provider,
            "token",
            provider.exchange(
                code, code_verifier=record.code_verifier, state=record.state, extra=params
            ),
        )
        if not await self.store.consume_state(provider.name, record.state):
            raise invalid_state()  # a concurrent exchange of this state won
        return tokens

    async def _observed(self, provider: Provider, call: str, pending: Any) -> Any:
        """Await a provider call, counting its outcome; faults and refusals are security
        events (AP4)."""
        try:
            result = await pending
        except ApiError as exc:
            self.metrics.provider_calls.labels(provider.name, call, exc.code).inc()
            event = {
                "invalid_provider_token": EventType.PROVIDER_TOKEN_REJECTED,
                "provider_unavailable": EventType.PROVIDER_FAULT,
                "invalid_grant": EventType.PROVIDER_CODE_REJECTED,
            }.get(exc.code)
            if event:
                # The one log line of a provider failure; the description says what failed.
                security_event(event, provider=provider.name, call=call, reason=exc.description)
            raise
        self.metrics.provider_calls.labels(provider.name, call, "ok").inc()
        return result

    async def _ready(self, provider: Provider) -> None:
        """Configured, and what it publishes read (OpenID Connect discovery, keys)."""
        if not provider.configured:
            raise not_configured(provider)
        await provider.ready()  # 503 provider_unavailable until it can be read


def _cookie_matches(record: OAuthState, cookie: str | None) -> bool:
    if not cookie or not record.binding_hash:
        return False
    return hmac.compare_digest(_binding_hash(cookie), record.binding_hash)


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise invalid_request(f"The parameter '{name}' is required.")
    return value
