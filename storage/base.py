"""The storage interface every backend implements, and the records it stores.

Times are POSIX seconds (float) passed in by the caller, so tests control the clock and
the backends never read it themselves. Uniqueness (email, phone, provider identity,
refresh-token id, OAuth state) comes from the database's own unique constraints; a
backend never checks with a read before it writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

# The audit log's records, re-exported: every record is reachable from here.
from storage.base_audit import AuditEvent as AuditEvent
from storage.base_audit import AuditStore
from storage.base_audit import EventQuery as EventQuery

# The second factors' records, re-exported: every store module reads records from here.
from storage.base_mfa import MfaChallenge as MfaChallenge
from storage.base_mfa import SecondFactors as SecondFactors
from storage.base_mfa import SecondFactorStore
from storage.base_mfa import TotpFactor as TotpFactor
from storage.exchanged import ExchangedTokens

# Passkey is re-exported: every record is reachable from here.
from storage.passkey_store import Passkey as Passkey
from storage.passkey_store import PasskeyStore


class StorageUnavailable(Exception):
    """The database cannot be reached or answered with a transient fault; nothing was written."""


class PartialWrite(StorageUnavailable):
    """The database failed part-way through a multi-step write and the undo failed too:
    some of it may have been written."""


class DuplicateError(Exception):
    """A unique constraint refused the write. `field` is `email`, `phone` or `identity`."""

    def __init__(self, field: str) -> None:
        super().__init__(f"duplicate {field}")
        self.field = field


@dataclass(frozen=True)
class Identity:
    """A user's account at a social provider: `subject` is the provider's stable user id.

    `linked_at` and `display` (a name or masked email from the provider's profile, for the
    account's list of ways in) describe the link; equality is (provider, subject) only."""

    provider: str
    subject: str
    linked_at: float = field(default=0.0, compare=False)
    display: str | None = field(default=None, compare=False)


@dataclass
class User:
    id: str
    email: str | None = None
    phone: str | None = None
    password_hash: str | None = None
    identities: list[Identity] = field(default_factory=list)
    profile: dict[str, str] = field(default_factory=dict)  # names, avatar from a provider
    created_at: float = 0.0
    email_verified: bool = False  # a code sent to `email` came back, or a provider vouched
    phone_verified: bool = False
    disabled: bool = False  # an operator blocked it: no sign-in, no refresh


@dataclass
class RefreshToken:
    """A refresh token's server-side record, keyed by its `jti`.

    `family` is the `jti` of the first token of a rotation chain; `replaced_by` is the
    successor's `jti` once rotated. A token is usable while not revoked, not replaced and
    not expired.
    """

    jti: str
    user_id: str
    family: str
    expires_at: float
    issued_at: float = 0.0
    revoked: bool = False
    replaced_by: str | None = None
    # The session (the family) this token belongs to, copied to each successor: when it
    # started, from which client address and user agent, and when it was last refreshed.
    session_started: float = 0.0
    client_ip: str | None = None
    user_agent: str | None = None
    last_used_at: float = 0.0


@dataclass
class OneTimeCode:
    """A code sent to a user, keyed by what it is for (`key`, e.g. reset:<user id>).

    Only its hash is stored. `attempts` counts the confirmations tried; at the limit the
    code is void. A newer code under the same key replaces it."""

    key: str
    code_hash: str
    user_id: str
    expires_at: float
    attempts: int = 0
    created_at: float = 0.0


@dataclass
class OAuthState:
    """One pending provider sign-in: single use, bound to one provider, short-lived."""

    state: str
    provider: str
    expires_at: float
    code_verifier: str | None = None
    code_hash: str | None = None  # sha256 of the code that `callback` saw for this state
    # sha256 of the browser-binding cookie set by `/link?redirect=1`; None: a JSON /link
    binding_hash: str | None = None
    # The signed-in user a `/authorization/identities/link/start` flow links the provider
    # identity to; None: a sign-in flow.
    link_user: str | None = None


@dataclass(frozen=True)
class SigningKey:
    """One token-signing key pair. It signs from `activates_at` until the key of the next
    `generation` activates; `generation` is unique, so two instances that rotate at once
    cannot both add a successor. `private_key` is encrypted (core.signing.kek), never plain."""

    kid: str
    generation: int
    algorithm: str
    public_key: str  # PEM, SubjectPublicKeyInfo
    private_key: str
    activates_at: float
    created_at: float


class Store(AuditStore, ExchangedTokens, PasskeyStore, SecondFactorStore, Protocol):
    """What the services need from a database. Every method may raise StorageUnavailable."""

    kind: str  # "sqlite" or "mongodb", for the start line and /readyz

    async def setup(self) -> None:
        """Create tables / indexes and run the pending schema migrations (storage/schema.py).
        Idempotent; called once at start. SchemaTooNew, before anything is written, when a
        later vhod migrated the store."""

    async def schema_version(self) -> int:
        """The schema version the store was last migrated to; 0 when none is recorded."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Return when the database answers; raise StorageUnavailable otherwise."""

    # users
    async def create_user(self, user: User, first_token: RefreshToken | None = None) -> None:
        """Insert a new user, and with it `first_token`, its first session, as one unit.

        DuplicateError names a unique field that collided (`email`, `phone`, `identity`,
        `id`, or `jti` for the token); then nothing was written, as with
        StorageUnavailable. PartialWrite: the unit failed and might not be undone."""

    async def get_user(self, user_id: str) -> User | None: ...

    async def find_user_by_email(self, email: str) -> User | None: ...

    async def find_user_by_phone(self, phone: str) -> User | None: ...

    async def find_user_by_identity(self, provider: str, subject: str) -> User | None: ...

    async def set_password_hash(self, user_id: str, password_hash: str) -> None: ...

    async def link_identity(self, user_id: str, identity: Identity) -> bool:
        """Give the user `identity` (with its linked_at and display); False when there is no
        such user. DuplicateError("identity") when any user (this one too) holds it already,
        DuplicateError("provider") when the user has an identity at that provider already;
        then nothing was written. The unique constraint decides, so of two concurrent links
        of one identity exactly one wins."""

    async def unlink_identity(self, user_id: str, provider: str, *, keep_a_way_in: bool) -> str:
        """Remove the user's identity at `provider`: "unlinked"; "not_linked" when it has
        none (or there is no such user). With `keep_a_way_in`: "last", and nothing removed,
        when the user has no password and no other identity; the check and the removal are
        one atomic step, so two concurrent unlinks cannot together leave the user none."""

    async def set_user_disabled(self, user_id: str, disabled: bool) -> bool:
        """Block or unblock the user; False when there is no such user."""

    async def list_users(self, limit: int, after: tuple[float, str] | None = None) -> list[User]:
        """Up to `limit` users in (created_at, id) order, after that pair when given."""

    async def swap_password_hash(self, user_id: str, old: str, new: str) -> bool:
        """Set the user's password hash to `new` only while it is `old`, atomically; False
        when the user is gone or the hash changed meanwhile (a concurrent change, reset or
        rehash), and then nothing is written."""

    # refresh tokens
    async def add_refresh_token(self, token: RefreshToken) -> None: ...

    async def add_password_session(self, token: RefreshToken, password_hash: str) -> bool:
        """Store `token`, a session a password check started, only while its user's
        password hash is still `password_hash` (the one checked); True when stored.

        A password change writes the new hash, then revokes the user's tokens
        (revoke_user_tokens). Against that sequence this is atomic: a session whose check
        used the replaced hash is either refused here or stored before the revocation and
        revoked by it; never stored live after it. SQLite checks and inserts in one
        transaction; MongoDB inserts, then reads the hash and removes the token when it
        changed (one of the two orders always catches it, without a transaction)."""

    async def get_refresh_token_and_user(self, jti: str) -> tuple[RefreshToken, User | None] | None:
        """The token's record and its user, None if there is none any more: every refresh
        reads both, in one call (SQLite answers it in one worker round trip). `revoked` is
        also true when the token's family was revoked."""

    async def rotate_refresh_token(self, jti: str, successor: RefreshToken, now: float) -> bool:
        """Atomically retire `jti` (set replaced_by) and store `successor`.

        True only for the one caller that found `jti` usable (not revoked, not replaced,
        not expired at `now`); every concurrent caller after it gets False and nothing is
        stored for it.
        """

    async def revoke_refresh_token(self, jti: str) -> None:
        """Revoke one token; revoking a revoked or unknown token is not an error."""

    async def revoke_family(self, family: str, *, until: float, now: float) -> None:
        """Revoke every token of `family`, including successors stored after this returns.

        Revocation is recorded on the family, not only on the tokens that exist now:
        MongoDB has no multi-document atomicity, so a rotation that retired its token
        just before the revocation may store its successor just after the update of the
        family's tokens. The successor carries the family, and get_refresh_token_and_user reports
        every member of a revoked family as revoked, so it is dead on arrival. The record
        is kept until `until`, the latest any token of the family can expire; `now` is
        when it was revoked, which revoked_families_since reports.
        """

    async def revoke_user_tokens(self, user_id: str, *, until: float, now: float) -> None:
        """Revoke every family the user has tokens of, as revoke_family does each one.

        Families the user starts afterwards (new sign-ins) are not affected."""

    async def revoked_families_since(self, since: float) -> list[tuple[str, float]]:
        """(family, revoked at) of every family revoked at or after `since` (as `now` told
        revoke_family, revoke_user_tokens and delete_user), still recorded: what each
        instance polls to refuse the access tokens of ended sessions (core.domain.revocations).
        An indexed read; a family revoked twice is reported with its latest time."""

    # OAuth states
    async def put_state(self, state: OAuthState) -> None: ...

    async def attach_code(self, state: str, provider: str, code_hash: str, now: float) -> bool:
        """Remember which code `callback` saw for a live state of this provider; only the
        first code: False when one is attached already (a callback is not replayed)."""

    async def find_state(self, provider: str, state: str, now: float) -> OAuthState | None:
        """The live state `state` of `provider`, left in place; else None."""

    async def find_state_by_code(
        self, provider: str, code_hash: str, now: float
    ) -> OAuthState | None:
        """The live state of `provider` whose attached code has this hash, left in place."""

    async def consume_state(self, provider: str, state: str) -> bool:
        """Remove the state: True for exactly one caller, False once it is gone (or belongs
        to another provider, where it is left in place)."""

    # counters (throttling); shared by every instance on the same store
    async def hit_counter(self, key: str, window: float, now: float) -> tuple[int, float]:
        """Count one hit on `key` in a fixed window that starts with its first hit.

        Returns (hits in the current window, the window's end). A window that ended
        starts afresh."""

    async def reset_counter(self, key: str) -> None: ...

    async def hit_counters(
        self, hits: Sequence[tuple[str, float]], now: float
    ) -> list[tuple[int, float]]:
        """`hit_counter` for each (key, window), in order, as one store round trip: a budget
        of several counters costs one wait, not one per counter."""

    async def purge_expired(self, now: float) -> None:
        """Delete expired states, counters, refresh tokens, family revocations, one-time
        codes, MFA challenges, exchanged provider tokens and audit events (MongoDB's TTL
        does it too)."""

    # bulk loading (seeding a benchmark, importing users)
    async def bulk_insert_users(self, users: Sequence[User]) -> None:
        """Insert many new users without provider identities in one round trip.

        Much faster than create_user one at a time; ValueError for a user that carries
        identities. When a user collides with a stored one (or with another of the batch)
        it raises DuplicateError; which of the other users were stored then depends on the
        backend (SQLite: none, one transaction; MongoDB: all the others, unordered)."""

    # account lifecycle: verification, sessions, deletion, one-time codes
    async def set_verified(self, user_id: str, field: str, value: str) -> bool:
        """Mark `field` ("email" or "phone") verified while it still holds `value`; False
        when the user is gone or the field changed meanwhile."""

    async def add_address(self, user_id: str, field: str, value: str) -> bool:
        """Give the user `field` ("email" or "phone") = `value`, verified, where it has none;
        False when it has one (or no such user); DuplicateError when another user has it."""

    async def list_live_tokens(self, user_id: str, now: float) -> list[RefreshToken]:
        """The user's usable refresh tokens (not revoked, its family neither, not replaced,
        not expired at `now`): one per live session. Oldest session first."""

    async def touch_refresh_token(self, jti: str, now: float) -> None:
        """Record that the token was used at `now` (the session's "last used")."""

    async def delete_user(self, user_id: str, *, until: float, now: float) -> None:
        """Remove the user, its identities, refresh tokens, codes and second factors (TOTP,
        recovery codes), so that its email,
        phone and identities are free again. Its families are recorded revoked first (as
        revoke_user_tokens, kept until `until`), so a rotation in flight stores nothing
        usable. Deleting an unknown user is not an error; a retry finishes a partial one."""

    async def put_code(self, code: OneTimeCode) -> None:
        """Store `code`, replacing any code under the same key (the old one stops working)."""

    async def try_code(self, key: str, now: float, max_attempts: int) -> OneTimeCode | None:
        """Count one confirmation attempt on the live code under `key`, atomically, and
        return it as counted; None when there is none, it expired, or it already had
        `max_attempts` attempts. So at most `max_attempts` comparisons ever happen."""

    async def consume_code(self, key: str, code_hash: str) -> bool:
        """Remove the code under `key` if its hash is `code_hash`: True for exactly one
        caller."""

    async def delete_code(self, key: str) -> None: ...

    # token-signing keys; shared by every instance on the same store
    async def add_signing_key(self, key: SigningKey) -> None:
        """Insert a key; DuplicateError("generation") when that generation exists already."""

    async def list_signing_keys(self) -> list[SigningKey]:
        """Every stored signing key, oldest generation first."""


async def find_user_by_address(store: Store, channel: str, address: str) -> User | None:
    """The user whose email (`channel` "email") or phone number is `address`."""
    if channel == "email":
        return await store.find_user_by_email(address)
    return await store.find_user_by_phone(address)
