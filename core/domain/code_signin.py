"""Sign-in with a one-time code sent to a phone number or an email address.

`send` counts the request against the budgets (core.domain.code_budgets), asks for a CAPTCHA
where the operator wants one, and sends a code; `login` trades the right code for the
seed's token pair. With sign-up by code off, an address that has no account gets no code
and the same answer as one that has, and the lookup and the sending happen after the
answer, so neither the answer nor its timing tells which it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.config import Config
from core.config.lifecycle_settings import CaptchaConfig
from core.domain.accounts import Accounts, account_disabled, new_user_id
from core.domain.after_answer import AfterAnswer, reported
from core.domain.code_budgets import DAY, GLOBAL_KEY, Budgets, counters, judge, region_allowed
from core.domain.codes import Codes, invalid_code, recipient
from core.domain.errors import ApiError
from core.domain.event_types import EventType
from core.domain.events import client_ip_var, identifier_hash, security_event
from core.domain.identifiers import one_identifier
from core.domain.mfa import asks_second_factor
from core.domain.throttle import login_key, rate_limited
from core.infra.captcha import SmartCaptcha, captcha_required
from core.infra.delivery import Delivery
from core.infra.metrics import Metrics
from core.infra.net import address_key
from storage.base import DuplicateError, Store, User, find_user_by_address

# RFC 8176: "sms" for a text message; a code in a messenger or a mail is "otp".
AMRS = ("sms", "otp")


def region_not_allowed() -> ApiError:
    return ApiError(
        400, "region_not_allowed", "Codes are not sent to phone numbers of this region."
    )


def budget_exhausted() -> ApiError:
    return ApiError(
        503,
        "delivery_budget_exhausted",
        "This server has sent all the codes it may send today; try again tomorrow.",
    )


@dataclass(frozen=True)
class CodeSignInSettings:
    sign_up: bool = False  # accounts.code_sign_up: a right code for a new address makes one
    email: bool = False  # accounts.email_code_sign_in
    default_region: str = "RU"
    allowed_regions: tuple[str, ...] = ()  # empty: the default region only
    captcha: str = "never"  # never | auto | always
    budgets: Budgets = field(default_factory=Budgets)


class CodeSignIn:
    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        codes: Codes,
        delivery: Delivery,
        settings: CodeSignInSettings,
        *,
        captcha: SmartCaptcha | None = None,
        on_exhausted: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.codes = codes
        self.delivery = delivery
        self.settings = settings
        self.captcha = captcha
        self.on_exhausted = on_exhausted  # the server's day of text messages is spent
        self.clock = accounts.clock
        self._after = AfterAnswer()  # the codes going out after their answers

    # the address

    def identifier(self, email: str | None, phone: str | None) -> tuple[str, str]:
        """(channel, normalised address) of the one given; 400 for both, neither, a bad
        address or a phone number of a region codes do not go to."""
        channel, address = one_identifier(email, phone, self.settings.default_region)
        allowed = self.settings.allowed_regions or (self.settings.default_region,)
        if channel == "phone" and not region_allowed(address, allowed):
            raise region_not_allowed()
        return channel, address

    def _require_channel(self, channel: str) -> None:
        if channel == "phone":
            self.delivery.require("phone")
        if channel == "email" and not (self.settings.email and self.delivery.configured("email")):
            raise ApiError(
                503,
                "delivery_not_configured",
                "This server does not send sign-in codes by email.",
            )

    @staticmethod
    def _key(channel: str, address: str, amr: str) -> str:
        return f"signin:{amr}:{channel}:{address}"

    # sending

    async def send(
        self,
        email: str | None,
        phone: str | None,
        captcha_token: str | None = None,
        accept_language: str | None = None,
    ) -> bool:
        channel, address = self.identifier(email, phone)
        self._require_channel(channel)
        client_ip = client_ip_var.get()
        budgets = self.settings.budgets
        if self.settings.captcha == "always":
            await self._check_captcha(captcha_token, client_ip)
        client = address_key(client_ip, self.accounts.throttle.limits.ipv6_prefix)
        keys = counters(channel, address, client, budgets)
        if channel == "phone" and budgets.daily_limit is not None:
            keys.append((GLOBAL_KEY, DAY))
        now = self.clock()
        counts = await self.store.hit_counters(keys, now)  # the one round trip
        verdict = judge(counts, budgets, now)
        if verdict.over is not None:
            if verdict.first_over:  # once per window: a flood must not flood the log too
                security_event(EventType.CODE_SENDS_LIMITED, limit=verdict.over)
            raise rate_limited(verdict.retry_after)
        if channel == "phone" and budgets.daily_limit is not None:
            sent_today = counts[-1][0]
            if sent_today > budgets.daily_limit:
                if sent_today == budgets.daily_limit + 1:
                    security_event(EventType.SMS_BUDGET_EXHAUSTED)
                if self.on_exhausted is not None:
                    self.on_exhausted()
                raise budget_exhausted()
        if self.settings.captcha == "auto" and verdict.captcha_due:
            await self._check_captcha(captcha_token, client_ip)
        if self.settings.sign_up:
            # Every address gets a code, so a failed delivery tells nothing: say it.
            user = await self._find(channel, address)
            await self._deliver(channel, address, user, accept_language)
            return True
        if not self._after.start(lambda: self._send_if_known(channel, address, accept_language)):
            security_event(EventType.CODE_NOT_SENT, reason="busy")
        return True

    async def _check_captcha(self, token: str | None, client_ip: str | None) -> None:
        if self.captcha is None or not await self.captcha.passes(token, client_ip):
            raise captcha_required()

    async def _send_if_known(self, channel: str, address: str, accept_language: str | None) -> None:
        async def send() -> None:
            user = await self._find(channel, address)
            if user is None or user.disabled:
                security_event(EventType.CODE_UNKNOWN, identifier=identifier_hash(address))
                return
            await self._deliver(channel, address, user, accept_language)

        await reported(send(), EventType.CODE_NOT_SENT, "a sign-in code")

    async def _deliver(
        self, channel: str, address: str, user: User | None, accept_language: str | None
    ) -> None:
        """Store a fresh code, then send it. It is stored under the amr its first channel
        would give; when a later channel of the chain took it, it moves to that one's key
        (withdrawn first, so that no moment has it valid twice)."""
        if user is not None and user.disabled:
            raise account_disabled()
        code, owner, to = (
            self.codes.new_code(),
            user.id if user else "",
            recipient(channel, address),
        )
        presumed = "sms" if channel == "phone" and not self.delivery.first_is_messenger() else "otp"
        # Only one key holds a code: an older one under the other is void.
        for other in AMRS:
            if other != presumed:
                await self.codes.withdraw(self._key(channel, address, other))
        await self.codes.issue(self._key(channel, address, presumed), owner, to, code)
        try:
            taken_by = await self.delivery.send_code(
                channel, address, "signin", code, self.codes.minutes, accept_language
            )
        except (ApiError, asyncio.CancelledError):  # none stays valid that nobody received
            await self.codes.withdraw(self._key(channel, address, presumed))
            raise
        text_message = channel == "phone" and not self.delivery.is_messenger(taken_by)
        amr = "sms" if text_message else "otp"
        if amr != presumed:
            await self.codes.withdraw(self._key(channel, address, presumed))
            await self.codes.issue(self._key(channel, address, amr), owner, to, code)
        security_event(EventType.CODE_SENT, user=user.id if user else None, channel=channel)

    async def _find(self, channel: str, address: str) -> User | None:
        return await find_user_by_address(self.store, channel, address)

    # signing in

    async def login(self, email: str | None, phone: str | None, code: str) -> dict[str, Any]:
        channel, address = self.identifier(email, phone)
        user = await self._find(channel, address)
        throttle = self.accounts.throttle
        key = login_key(user.id if user else None, address)
        attempt = await throttle.reserve_login(key)
        try:
            amr = await self._confirm(channel, address, code)
        except ApiError:
            throttle.login_failed(key, attempt)  # wrong codes count like wrong passwords
            security_event(
                EventType.CODE_LOGIN_FAILED,
                user=user.id if user else None,
                identifier=None if user else identifier_hash(address),
            )
            raise
        if user is None:
            if not self.settings.sign_up:
                raise invalid_code()
            user = await self._sign_up(channel, address)
        if user.disabled:
            raise account_disabled()
        field_name = "email" if channel == "email" else "phone"
        await self.store.set_verified(user.id, field_name, address)
        fresh = await self.store.get_user(user.id) or user
        answer = await self.accounts.start_session(fresh, "code_login", [amr])
        if asks_second_factor(answer):
            return answer  # the failure count stays until the second factor passes
        await throttle.login_succeeded(key)
        security_event(EventType.LOGIN_SUCCEEDED, user=user.id, method=f"code_{amr}")
        return answer

    async def _confirm(self, channel: str, address: str, code: str) -> str:
        """The amr of the channel whose code this is; 400 invalid_code otherwise. Only one
        key holds a code at a time (see _deliver), so the tries stay those of one code."""
        for amr in AMRS:
            try:
                to = recipient(channel, address)
                await self.codes.confirm(self._key(channel, address, amr), code, to)
            except ApiError:
                continue
            return amr
        raise invalid_code()

    async def confirm_own(self, user: User, code: str) -> str:
        """Use a sign-in code sent to one of `user`'s addresses (a fresh proof, for what an
        access token alone must not do); 400 invalid_code otherwise. Counted like a login."""
        throttle = self.accounts.throttle
        key = login_key(user.id, "")
        attempt = await throttle.reserve_login(key)
        for channel, address in (("phone", user.phone), ("email", user.email)):
            if address is None:
                continue
            try:
                amr = await self._confirm(channel, address, code)
            except ApiError:
                continue
            await throttle.login_succeeded(key)
            return amr
        throttle.login_failed(key, attempt)
        raise invalid_code()

    async def _sign_up(self, channel: str, address: str) -> User:
        user = User(
            id=new_user_id(),
            email=address if channel == "email" else None,
            phone=address if channel == "phone" else None,
            email_verified=channel == "email",
            phone_verified=channel == "phone",
            created_at=self.clock(),
        )
        try:
            await self.store.create_user(user)
        except DuplicateError:
            # The same code cannot be used twice, but an account with the address may have
            # been made by another route meanwhile: sign into it, the code proved the address.
            existing = await self._find(channel, address)
            if existing is None:
                raise
            return existing
        security_event(EventType.REGISTERED, user=user.id, method=f"code_{channel}")
        return user

    async def drain(self, grace: float) -> None:
        """Wait up to `grace` seconds for the codes still going out, then cancel the rest
        (each withdraws its code before the store closes)."""
        await self._after.drain(grace)


def code_sign_in_settings(config: Config) -> CodeSignInSettings:
    sms = config.sms
    return CodeSignInSettings(
        sign_up=config.accounts.code_sign_up,
        email=config.accounts.email_code_sign_in,
        default_region=config.identifiers.default_region,
        allowed_regions=tuple(region.upper() for region in sms.allowed_regions),
        captcha="never" if config.captcha.provider is None else config.captcha.required,
        budgets=Budgets(
            per_address_per_hour=sms.per_number_per_hour,
            per_address_per_day=sms.per_number_per_day,
            per_client_per_hour=sms.per_client_per_hour,
            per_prefix_per_hour=sms.per_prefix_per_hour,
            prefix_digits=sms.prefix_digits,
            daily_limit=sms.daily_limit,
            captcha_share=config.captcha.share,
        ),
    )


def captcha_client(config: CaptchaConfig) -> SmartCaptcha | None:
    if config.provider != "smartcaptcha" or not config.server_key:
        return None
    return SmartCaptcha(
        server_key=config.server_key,
        url=config.url,
        timeout=config.timeout,
        fail_open=config.fail_open,
    )


def code_sign_in_from(
    config: Config,
    store: Store,
    accounts: Accounts,
    codes: Codes,
    delivery: Delivery,
    metrics: Metrics,
) -> CodeSignIn:
    """Code sign-in as the configuration sets it up."""
    return CodeSignIn(
        store,
        accounts,
        codes,
        delivery,
        code_sign_in_settings(config),
        captcha=captcha_client(config.captcha),
        on_exhausted=metrics.sms_budget_exhausted.inc,
    )
