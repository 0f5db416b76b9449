"""Everything the handlers use, built once at start (server.build_services) and reachable
from the application's settings. Handlers import it from here, below them."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from core.config import Config
from core.domain.accounts import Accounts
from core.domain.addresses import Addresses
from core.domain.admin import Admin
from core.domain.audit import AuditLog
from core.domain.code_signin import CodeSignIn
from core.domain.identities import Identities
from core.domain.lifecycle import Lifecycle
from core.domain.mfa import SecondFactors
from core.domain.mfa_account import SecondFactorAccount
from core.domain.passkeys import Passkeys
from core.domain.passwords import Hasher
from core.domain.social import SocialSignIn
from core.domain.throttle import Throttle
from core.infra.metrics import Metrics
from core.signing.key_manager import KeyManager
from core.signing.tokens import TokenService
from storage.base import Store

SHUTDOWN_GRACE_SECONDS = 30


@dataclass
class Services:
    """Everything the handlers use, built once at start and reachable from `settings`."""

    config: Config
    store: Store
    hasher: Hasher
    tokens: TokenService
    keys: KeyManager
    accounts: Accounts
    social: SocialSignIn
    throttle: Throttle
    metrics: Metrics
    lifecycle: Lifecycle
    code_sign_in: CodeSignIn
    addresses: Addresses
    audit: AuditLog
    admin: Admin
    identities: Identities
    passkeys: Passkeys
    second_factors: SecondFactors  # the sign-in gate and mfa/verify
    mfa_account: SecondFactorAccount  # /authorization/mfa/…
    trusted_proxies: tuple[Any, ...] = ()
    providers: dict[str, Any] = field(default_factory=dict)
    in_flight: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def request_started(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def request_finished(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self, grace: float) -> None:
        """Return once no request is in flight, or after `grace` seconds."""
        if self.in_flight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)

    async def close(self) -> None:
        await self.lifecycle.drain(SHUTDOWN_GRACE_SECONDS)  # reset codes still going out
        await self.code_sign_in.drain(SHUTDOWN_GRACE_SECONDS)
        self.hasher.close()
        await self.audit.close()  # the queued events go to the store before it closes
        await self.store.close()
