"""The MongoDB store's documents for users, identity claims and refresh tokens."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from storage.base import Identity, RefreshToken, User


def purge_at(seconds: float) -> datetime:
    """The BSON date a TTL index expires a document at; only the TTL monitor reads it."""
    return datetime.fromtimestamp(seconds, UTC)


def identity_key(provider: str, subject: str) -> str:
    """The `_id` of an identity claim; escaping keeps ("a:b", "c") apart from ("a", "b:c")."""
    return provider.replace("%", "%25").replace(":", "%3A") + ":" + subject


def identity_document(identity: Identity) -> dict[str, Any]:
    """An identity as the user document embeds it (the claim adds `_id` and `user_id`)."""
    return {
        "provider": identity.provider,
        "subject": identity.subject,
        "linked_at": identity.linked_at,
        "display": identity.display,
    }


def identity_from(doc: Mapping[str, Any]) -> Identity:
    return Identity(
        doc["provider"],
        doc["subject"],
        float(doc.get("linked_at") or 0.0),
        doc.get("display"),
    )


def user_from(doc: Mapping[str, Any] | None) -> User | None:
    if doc is None:
        return None
    return User(
        id=doc["_id"],
        email=doc.get("email"),
        phone=doc.get("phone"),
        password_hash=doc.get("password_hash"),
        identities=[identity_from(i) for i in doc.get("identities") or []],
        profile=dict(doc.get("profile") or {}),
        created_at=float(doc.get("created_at") or 0.0),
        email_verified=bool(doc.get("email_verified")),
        phone_verified=bool(doc.get("phone_verified")),
        disabled=bool(doc.get("disabled")),
    )


def token_document(token: RefreshToken) -> dict[str, Any]:
    return {
        "_id": token.jti,
        "user_id": token.user_id,
        "family": token.family,
        "expires_at": token.expires_at,
        "issued_at": token.issued_at,
        "revoked": bool(token.revoked),
        "replaced_by": token.replaced_by,
        "session_started": token.session_started,
        "client_ip": token.client_ip,
        "user_agent": token.user_agent,
        "last_used_at": token.last_used_at,
        "purge_at": purge_at(token.expires_at),
    }


def token_from(doc: Mapping[str, Any] | None) -> RefreshToken | None:
    if doc is None:
        return None
    return RefreshToken(
        jti=doc["_id"],
        user_id=doc["user_id"],
        family=doc["family"],
        expires_at=float(doc["expires_at"]),
        issued_at=float(doc.get("issued_at") or 0.0),
        # A document may hold 0/1 (written by another tool): read as a boolean.
        revoked=bool(doc.get("revoked")),
        replaced_by=doc.get("replaced_by"),
        session_started=float(doc.get("session_started") or 0.0),
        client_ip=doc.get("client_ip"),
        user_agent=doc.get("user_agent"),
        last_used_at=float(doc.get("last_used_at") or 0.0),
    )


def user_document(user: User) -> dict[str, Any]:
    """The document `create_user` writes for `user` (also used to bulk-load users)."""
    doc: dict[str, Any] = {
        "_id": user.id,
        "password_hash": user.password_hash,
        "identities": [identity_document(i) for i in user.identities],
        "profile": dict(user.profile),
        "created_at": user.created_at,
        "email_verified": user.email_verified,
        "phone_verified": user.phone_verified,
    }
    # Absent rather than null, so the partial unique indexes leave them out.
    if user.email is not None:
        doc["email"] = user.email
    if user.phone is not None:
        doc["phone"] = user.phone
    return doc
