"""Sessions of a signed-in user: issuing a token pair, checking an access token, refreshing,
and ending sessions. A base of core.domain.accounts.Accounts, which sets what it reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.domain.claims import RESTRICTED_SCOPES, access_claims, enrol_only_claims, user_name
from core.domain.errors import (
    invalid_credentials,
    invalid_token,
    mfa_enrolment_required,
    unverified_email,
)
from core.domain.event_types import EventType
from core.domain.events import security_event
from core.domain.revocations import RevokedSessions
from core.domain.sessions import carried_over, needs_touch, started_here
from core.infra.clock import Clock
from core.signing.tokens import ACCESS, REFRESH, InvalidToken, TokenService
from storage.base import RefreshToken, Store, User

if TYPE_CHECKING:
    from core.domain.accounts import AccountSettings
    from core.domain.mfa import SecondFactors

REVOCATION_SLACK_SECONDS = 3600


class TokenSessions:
    store: Store
    tokens: TokenService
    clock: Clock
    revoked: RevokedSessions
    settings: AccountSettings
    # Asks for a second factor where the user has one (core.domain.mfa); set at start. None: no
    # first factor is ever followed by a second.
    second_factors: SecondFactors | None = None

    def refuse_disabled(self, user: User, call: str) -> None:
        raise NotImplementedError  # Accounts'

    def awaits_email(self, user: User) -> bool:
        raise NotImplementedError  # Accounts'

    # tokens

    def validate_access(self, token: str) -> bool:
        try:
            session, scope = self.tokens.check(token, ACCESS)  # no claims dict is built
        except InvalidToken:
            return False
        # A token that may only confirm an email address is no sign-in for other services;
        # a session ended on any instance is over (one set lookup, no store read).
        return scope not in RESTRICTED_SCOPES and not (
            session is not None and session in self.revoked
        )

    async def refresh(self, token: str) -> dict[str, Any]:
        """A new access token for a live refresh token; with rotation, a new refresh token too."""
        record, user = await self._renewable(token)
        now = self.clock()
        result: dict[str, Any] = {
            "access": self.tokens.issue(
                ACCESS,
                user.id,
                user_name(user),
                session=record.family,
                extra=access_claims(user, self.settings.require_verified_email),
            ).token,
            "email": user.email,
        }
        if self.settings.rotate_refresh:
            issued = self.tokens.issue(REFRESH, user.id, user_name(user))
            successor = RefreshToken(
                jti=issued.jti,
                user_id=user.id,
                family=record.family,
                expires_at=issued.expires_at,
                issued_at=now,
                **carried_over(record, now),
            )
            if not await self.store.rotate_refresh_token(record.jti, successor, now):
                raise invalid_token()  # a concurrent refresh of the same token won
            result["refresh"] = issued.token
        elif needs_touch(record, now):
            await self.store.touch_refresh_token(record.jti, now)
        return result

    async def logout(self, token: str, everywhere: bool = False) -> bool:
        try:
            claims = self.tokens.decode(token, REFRESH)
        except InvalidToken as exc:
            raise invalid_token() from exc
        if everywhere:
            # Ending every session takes a live session: a revoked, retired or expired
            # token (a stolen copy of an old one, say) cannot end the others.
            record, _user = await self._live_refresh(token)
            await self.end_all_sessions(record.user_id)
        else:
            await self._end_session_of(claims)
        scope = "all" if everywhere else "one"
        security_event(EventType.LOGOUT, user=claims["sub"], scope=scope)
        return True

    async def _end_session_of(self, claims: dict[str, Any]) -> None:
        """End a refresh token's session (family): its access tokens check false too."""
        found = await self.store.get_refresh_token_and_user(claims["jti"])
        if found is None or found[0].user_id != claims["sub"]:
            await self.store.revoke_refresh_token(claims["jti"])  # unknown: nothing to end
            return
        if found[0].revoked:
            return  # ended already: a repeated logout writes nothing
        await self.store.revoke_family(
            found[0].family, until=self._revocation_horizon(), now=self.clock()
        )

    async def end_all_sessions(self, user_id: str) -> None:
        """Revoke every refresh token of the user, and any successor a rotation in flight
        stores afterwards."""
        await self.store.revoke_user_tokens(
            user_id, until=self._revocation_horizon(), now=self.clock()
        )

    async def _live_refresh(self, token: str) -> tuple[RefreshToken, User]:
        try:
            subject, jti = self.tokens.subject_and_id(token, REFRESH)
        except InvalidToken as exc:
            raise invalid_token() from exc
        found = await self.store.get_refresh_token_and_user(jti)
        if found is None or found[0].user_id != subject:
            raise invalid_token()
        record, user = found
        if record.replaced_by:
            # A retired token came back: someone holds a copy. End the whole chain (RT3).
            await self.store.revoke_family(
                record.family, until=self._revocation_horizon(), now=self.clock()
            )
            security_event(EventType.REFRESH_REUSE, user=record.user_id, family=record.family)
            raise invalid_token()
        if user is None:
            raise invalid_token()
        # Before the revocation check: blocking revoked every session, and the answer
        # says why the session ended.
        self.refuse_disabled(user, "refresh")
        if record.revoked or record.expires_at <= self.clock():
            raise invalid_token()
        return record, user

    async def _renewable(self, token: str) -> tuple[RefreshToken, User]:
        """A live refresh token whose user may have its session renewed: not while the
        email `accounts.require_verified_email` waits for is unconfirmed (403)."""
        record, user = await self._live_refresh(token)
        if self.awaits_email(user):
            raise unverified_email()
        gate = self.second_factors
        if gate is not None and gate.require_mfa and not await gate.methods(user.id):
            raise mfa_enrolment_required()
        return record, user

    def _revocation_horizon(self) -> float:
        """How long a family revocation is kept: past the expiry of any successor a
        rotation in flight right now could still store (an hour covers clock skew)."""
        return self.clock() + self.tokens.refresh_ttl + REVOCATION_SLACK_SECONDS

    def _new_session(
        self, user: User, amr: list[str] | None = None, *, enrol_only: bool = False
    ) -> tuple[RefreshToken, dict[str, str]]:
        """A new token pair for `user`, and the refresh token's record (not yet stored);
        `amr` (RFC 8176) says how the user proved who they are, in the access token."""
        name = user_name(user)
        refresh = self.tokens.issue(REFRESH, user.id, name)
        now = self.clock()
        record = RefreshToken(
            jti=refresh.jti,
            user_id=user.id,
            family=refresh.jti,
            expires_at=refresh.expires_at,
            issued_at=now,
            **started_here(now),
        )
        # sid: the family
        extra = access_claims(user, self.settings.require_verified_email)
        if enrol_only:
            extra.update(enrol_only_claims(extra))
        if amr:
            extra["amr"] = amr
        access = self.tokens.issue(ACCESS, user.id, name, session=refresh.jti, extra=extra)
        pair = {"access": access.token, "refresh": refresh.token}
        return record, pair

    async def start_session(
        self,
        user: User,
        call: str,
        amr: list[str] | None = None,
        *,
        password_hash: str | None = None,
    ) -> dict[str, Any]:
        """The end of a first factor (`amr`, RFC 8176): a new session for `user`, read just
        before (none for a disabled user), or, where the user has a second factor, the
        answer that asks for it (core.domain.mfa). `password_hash`: the password the factor
        checked; the session is stored only while it is still the user's (RT7)."""
        self.refuse_disabled(user, call)
        enrol_only = False
        gate = self.second_factors
        if gate is not None:
            asked = await gate.challenge(user, amr or [], password_hash)
            if asked is not None:
                return asked
            enrol_only = gate.require_mfa  # no second factor yet: it may only enrol one
        return await self.open_session(
            user, amr, password_hash=password_hash, enrol_only=enrol_only
        )

    async def open_session(
        self,
        user: User,
        amr: list[str] | None = None,
        *,
        password_hash: str | None = None,
        enrol_only: bool = False,
    ) -> dict[str, str]:
        """Store a new session and return its pair; with `password_hash`, only while that
        is the user's password (else 401 invalid_credentials, as issue_password_pair)."""
        record, pair = self._new_session(user, amr, enrol_only=enrol_only)
        if password_hash is None:
            await self.store.add_refresh_token(record)
        elif not await self.store.add_password_session(record, password_hash):
            security_event(EventType.LOGIN_FAILED, user=user.id, reason="password_replaced")
            raise invalid_credentials()
        return pair

    async def issue_password_pair(self, user: User, password_hash: str) -> dict[str, str]:
        """A new session for `user` resting on the password whose hash is `password_hash`
        (just set by a change, in a session that passed its factors). 401
        invalid_credentials when that password was replaced meanwhile: a change still
        hashing while another change or reset ended every session must not store one
        after it."""
        return await self.open_session(user, password_hash=password_hash)

    async def _issue_pair(
        self, user: User, amr: list[str] | None = None, *, enrol_only: bool = False
    ) -> dict[str, str]:
        return await self.open_session(user, amr, enrol_only=enrol_only)
