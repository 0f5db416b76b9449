"""Sessions: a refresh-token family, with what it started with and when it was last used.

The client address and user agent are request context, like core.domain.events.client_ip_var:
the handler sets them once and every session started while serving the request gets them.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from core.domain.events import client_ip_var
from storage.base import RefreshToken

user_agent_var: ContextVar[str] = ContextVar("user_agent", default="")
MAX_USER_AGENT_CHARS = 256
# A refresh writes "last used" at most this often per session: the refresh route is the
# busiest after the token check, and a session list needs no finer clock.
TOUCH_INTERVAL_SECONDS = 300


def started_here(now: float) -> dict[str, Any]:
    """The session fields of a token that starts a session now, in this request."""
    agent = "".join(c for c in user_agent_var.get() if c.isprintable())
    address = client_ip_var.get()
    return {
        "session_started": now,
        "client_ip": None if address == "-" else address,
        "user_agent": agent[:MAX_USER_AGENT_CHARS] or None,
        "last_used_at": now,
    }


def carried_over(token: RefreshToken, now: float) -> dict[str, Any]:
    """The session fields a rotation's successor takes from `token`."""
    return {
        "session_started": token.session_started,
        "client_ip": token.client_ip,
        "user_agent": token.user_agent,
        "last_used_at": now,
    }


def needs_touch(token: RefreshToken, now: float) -> bool:
    return now - token.last_used_at >= TOUCH_INTERVAL_SECONDS


def session_view(token: RefreshToken, current: str | None) -> dict[str, Any]:
    """What GET /authorization/sessions shows of one session."""
    return {
        "id": token.family,
        "created": int(token.session_started or token.issued_at),
        "last_used": int(max(token.last_used_at, token.issued_at)),
        "client_ip": token.client_ip,
        "user_agent": token.user_agent,
        "current": token.family == current,
    }
