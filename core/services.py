"""Everything the handlers use, built once at start (server.build_services) and reachable
from the application's settings. Handlers import it from here, below them."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from core.accounts import Accounts
from core.addresses import Addresses
from core.admin import Admin
from core.audit import AuditLog
from core.code_signin import CodeSignIn
from core.config import Config
from core.identities import Identities
from core.key_manager import KeyManager
from core.lifecycle import Lifecycle
from core.metrics import Metrics
from core.mfa import SecondFactors
from core.mfa_account import SecondFactorAccount
from core.passkeys import Passkeys
from core.passwords import Hasher
from core.social import SocialSignIn
from core.throttle import Throttle
from core.tokens import TokenService
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
    second_factors: SecondFactors | None = None  # the sign-in gate and mfa/verify
    mfa_account: SecondFactorAccount | None = None  # /authorization/mfa/…
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
