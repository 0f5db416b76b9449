"""The operators' side: admin keys, user search and blocking, the audit log's pages.

The admin routes (handlers/admin.py) and the CLI (core/cli/admin_cli.py) call the same
functions here, so an action taken either way is checked and audited the same way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.domain.accounts import Accounts
from core.domain.audit import EVENT_TYPES, AuditLog, event_json
from core.domain.errors import ApiError, invalid_request
from core.domain.event_types import EventType
from core.domain.events import identifier_hash, security_event
from core.domain.identifiers import normalize_email, normalize_phone
from core.domain.lifecycle import Lifecycle
from core.domain.mfa_account import SecondFactorAccount
from core.domain.throttle import rate_limited
from core.infra.clock import Clock, system_clock
from core.infra.net import address_key
from storage.base import EventQuery, Store, User

ADMIN_KEY_PREFIX = "vhod_admin_"
DEFAULT_PAGE = 50
MAX_PAGE = 200
EXPORT_PAGE = 500
MAX_QUERY_CHARS = 320
MAX_CURSOR_CHARS = 512
ADDRESS_WINDOW_SECONDS = 60
USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# The events that count as a sign-in for "last signed in".
SIGN_IN_EVENTS = ("login_succeeded", "registered")


def new_admin_key() -> tuple[str, str]:
    """A fresh random key and the SHA-256 (hex) that goes into admin.keys."""
    key = ADMIN_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hashlib.sha256(key.encode()).hexdigest()


class AdminKeys:
    """The configured keys, by the SHA-256 of each; none configured: no admin routes."""

    def __init__(self, hashes: Mapping[str, str]) -> None:
        self._hashes = [(name, bytes.fromhex(digest)) for name, digest in sorted(hashes.items())]

    @property
    def configured(self) -> bool:
        return bool(self._hashes)

    def name_for(self, presented: str | None) -> str | None:
        """The name of the key presented, or None. The same work for any key, right, wrong
        or missing: one digest, then a constant-time comparison with every hash."""
        digest = hashlib.sha256((presented or "").encode("utf-8", "surrogatepass")).digest()
        found = None
        for name, expected in self._hashes:
            if hmac.compare_digest(digest, expected) and found is None:
                found = name
        return None if presented is None else found


def invalid_admin_key() -> ApiError:
    return ApiError(
        401,
        "invalid_admin_key",
        "An admin key is required as Authorization: Bearer <key>.",
        headers={"WWW-Authenticate": 'Bearer realm="vhod-admin"'},
    )


def user_not_found() -> ApiError:
    return ApiError(404, "user_not_found", "There is no user with this id.")


def invalid_cursor() -> ApiError:
    return ApiError(400, "invalid_cursor", "The cursor is not one this server gave out.")


class Cursors:
    """Opaque, tamper-evident page positions: base64url of (kind, value, id) and its HMAC."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]

    def encode(self, kind: str, position: tuple[float, str]) -> str:
        payload = json.dumps([kind, position[0], position[1]], separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(self, kind: str, cursor: str) -> tuple[float, str]:
        """The position `cursor` stands for; 400 invalid_cursor for anything this server did
        not make for `kind`."""
        if len(cursor) > MAX_CURSOR_CHARS or cursor.count(".") != 1:
            raise invalid_cursor()
        body, mac = cursor.split(".")
        try:
            payload, given = _unb64(body), _unb64(mac)
        except (ValueError, binascii.Error) as exc:
            raise invalid_cursor() from exc
        if not hmac.compare_digest(given, self._mac(payload)):
            raise invalid_cursor()
        made_for, value, last_id = json.loads(payload)  # well-formed: this server signed it
        if made_for != kind:
            raise invalid_cursor()
        return float(value), str(last_id)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_limit(value: str | None, *, default: int = DEFAULT_PAGE) -> int:
    if value is None or value == "":
        return default
    if not re.fullmatch(r"[0-9]{1,4}", value) or not 1 <= int(value) <= MAX_PAGE:
        raise invalid_request(f"limit must be a whole number from 1 to {MAX_PAGE}.")
    return int(value)


def parse_time(name: str, value: str | None) -> float | None:
    """A time parameter: POSIX seconds, or ISO 8601 (UTC unless it names a zone)."""
    if value is None or value == "":
        return None
    if len(value) <= 40:
        try:
            seconds = float(value)
        except ValueError:
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
                return moment.timestamp()
        else:
            if math.isfinite(seconds) and 0 <= seconds < 1e11:
                return seconds
    raise invalid_request(f"{name} must be POSIX seconds or an ISO 8601 time.")


def check_user_id(user_id: str) -> str:
    if not USER_ID.match(user_id):
        raise user_not_found()
    return user_id


@dataclass(frozen=True)
class EventFilter:
    user_id: str | None = None
    type: str | None = None
    since: float | None = None
    until: float | None = None

    @classmethod
    def parse(
        cls, user: str | None, kind: str | None, since: str | None, until: str | None
    ) -> EventFilter:
        if user and not USER_ID.match(user):
            raise invalid_request("user must be a user id.")
        if kind and kind not in EVENT_TYPES:
            raise invalid_request("type is not an event type of the audit log.")
        return cls(
            user or None, kind or None, parse_time("since", since), parse_time("until", until)
        )


class Admin:
    """What an operator can do; `admin` names the key (or "cli") in the audit log."""

    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        audit: AuditLog,
        keys: AdminKeys,
        cursors: Cursors,
        lifecycle: Lifecycle,
        *,
        per_ip_per_minute: int = 60,
        ipv6_prefix: int = 64,
        clock: Clock = system_clock,
        second_factors: SecondFactorAccount | None = None,
    ) -> None:
        self.lifecycle = lifecycle
        self.second_factors = second_factors
        self.store = store
        self.accounts = accounts
        self.audit = audit
        self.keys = keys
        self.cursors = cursors
        self.per_ip_per_minute = per_ip_per_minute
        self.ipv6_prefix = ipv6_prefix
        self.clock = clock

    # access

    async def limit_address(self, address: str) -> None:
        """Count one admin request from `address`; 429 past the per-minute limit."""
        now = self.clock()
        key = f"admin-ip:{address_key(address, self.ipv6_prefix)}"
        hits, window_end = await self.store.hit_counter(key, ADDRESS_WINDOW_SECONDS, now)
        if hits > self.per_ip_per_minute:
            raise rate_limited(window_end - now)

    def authenticate(self, presented: str | None) -> str:
        """The name of the presented key; 401 (and an audit event) for any other."""
        name = self.keys.name_for(presented)
        if name is None:
            security_event(EventType.ADMIN_AUTH_FAILED)
            raise invalid_admin_key()
        return name

    # users

    async def find_users(
        self, query: str, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> dict[str, Any]:
        """Users whose email, phone or provider identity (`provider:subject`) is `query`,
        normalised as sign-in does; every user for an empty query. In creation order."""
        after = self.cursors.decode("users", cursor) if cursor else None
        query = query.strip()
        if len(query) > MAX_QUERY_CHARS:
            raise invalid_request(f"query is longer than {MAX_QUERY_CHARS} characters.")
        if query:
            found = [
                u for u in await self._exact_matches(query) if after is None or _key(u) > after
            ]
            page = sorted(found, key=_key)[:limit]
        else:
            page = await self.store.list_users(limit, after)
        next_cursor = self.cursors.encode("users", _key(page[-1])) if len(page) == limit else None
        return {"users": [await self._user_json(u) for u in page], "next_cursor": next_cursor}

    async def _exact_matches(self, query: str) -> list[User]:
        if "@" in query:
            found = [await self.store.find_user_by_email(normalize_email(query))]
        elif ":" in query:
            provider, _, subject = query.partition(":")
            found = [await self.store.find_user_by_identity(provider.lower(), subject)]
        else:
            region = self.accounts.settings.default_region
            found = [await self.store.find_user_by_phone(normalize_phone(query, region))]
        return [user for user in found if user is not None]

    async def user(self, user_id: str) -> dict[str, Any]:
        user = await self.store.get_user(check_user_id(user_id))
        if user is None:
            raise user_not_found()
        return await self._user_json(user)

    async def disable(self, user_id: str, admin: str) -> dict[str, Any]:
        """Block the user, then end every session: a sign-in that read the user just before
        gets a session that the refresh check refuses."""
        if not await self.store.set_user_disabled(check_user_id(user_id), True):
            raise user_not_found()
        await self.accounts.end_all_sessions(user_id)
        security_event(EventType.ADMIN_USER_DISABLED, user=user_id, admin=admin)
        return await self.user(user_id)

    async def enable(self, user_id: str, admin: str) -> dict[str, Any]:
        if not await self.store.set_user_disabled(check_user_id(user_id), False):
            raise user_not_found()
        security_event(EventType.ADMIN_USER_ENABLED, user=user_id, admin=admin)
        return await self.user(user_id)

    async def revoke_sessions(self, user_id: str, admin: str) -> dict[str, Any]:
        """Sign the user out everywhere: every refresh token ends."""
        if await self.store.get_user(check_user_id(user_id)) is None:
            raise user_not_found()
        await self.accounts.end_all_sessions(user_id)
        security_event(EventType.ADMIN_SESSIONS_REVOKED, user=user_id, admin=admin)
        return {"revoked": True}

    async def reset_mfa(self, user_id: str, admin: str) -> dict[str, Any]:
        """Remove the user's second factors (a lost authenticator); its sessions stay."""
        if await self.store.get_user(check_user_id(user_id)) is None:
            raise user_not_found()
        if self.second_factors is None:
            raise ApiError(404, "not_found", "This server has no second factors.")
        removed = await self.second_factors.reset(user_id)
        security_event(EventType.ADMIN_MFA_RESET, user=user_id, admin=admin)
        return {"reset": True, "removed": removed}

    async def delete(self, user_id: str, admin: str) -> dict[str, Any]:
        """The same deletion as the user's own: personal data, identities and every token go;
        the email, phone and identities are free again."""
        if not await self.lifecycle.delete_account(check_user_id(user_id)):
            raise user_not_found()
        # The user id is gone from the audit log already: the event names the pseudonym.
        security_event(
            EventType.ADMIN_USER_DELETED,
            identifier=identifier_hash(f"user:{user_id}"),
            admin=admin,
        )
        return {"deleted": True}

    async def _user_json(self, user: User) -> dict[str, Any]:
        await self.audit.flush()  # what was just done is what the operator reads back
        last = await self.store.list_events(
            EventQuery(limit=1, user_id=user.id, types=SIGN_IN_EVENTS, newest_first=True)
        )
        return {
            "id": user.id,
            "email": user.email,
            "phone": user.phone,
            "email_verified": user.email_verified,
            "phone_verified": user.phone_verified,
            "identities": [{"provider": i.provider, "subject": i.subject} for i in user.identities],
            "profile": dict(user.profile),
            "has_password": user.password_hash is not None,
            "disabled": user.disabled,
            "created_at": user.created_at,
            "last_sign_in_at": last[0].time if last else None,
            "sessions": await self.lifecycle.list_sessions(user.id),
        }

    # the audit log

    async def events(
        self, selected: EventFilter, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> dict[str, Any]:
        """A page of the audit log, newest first."""
        after = self.cursors.decode("events", cursor) if cursor else None
        await self.audit.flush()
        page = await self.store.list_events(_query(selected, limit, after, newest_first=True))
        last = page[-1] if len(page) == limit else None
        return {
            "events": [event_json(event) for event in page],
            "next_cursor": None
            if last is None
            else self.cursors.encode("events", (last.time, last.id)),
        }

    async def export(
        self, selected: EventFilter, *, after: tuple[float, str] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every selected event (after the (time, id) `after`), oldest first, a page at a
        time (for JSON Lines)."""
        await self.audit.flush()
        while True:
            page = await self.store.list_events(_query(selected, EXPORT_PAGE, after))
            if page:
                yield [event_json(event) for event in page]
            if len(page) < EXPORT_PAGE:
                return
            after = (page[-1].time, page[-1].id)


def _key(user: User) -> tuple[float, str]:
    return (user.created_at, user.id)


def _query(
    selected: EventFilter,
    limit: int,
    after: tuple[float, str] | None,
    *,
    newest_first: bool = False,
) -> EventQuery:
    return EventQuery(
        limit=limit,
        user_id=selected.user_id,
        types=(selected.type,) if selected.type else (),
        since=selected.since,
        until=selected.until,
        after=after,
        newest_first=newest_first,
    )
