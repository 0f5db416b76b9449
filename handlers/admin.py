"""The admin routes under /admin/: an operator's key in, core.domain.admin's answers out.

Never CORS-enabled, and absent (404) while no admin key is configured. Each request is
counted per client address before its key is checked, and a wrong key costs the same
work as a right one (core.domain.admin.AdminKeys).
"""

from __future__ import annotations

import json
import re
from typing import Any

from core.domain.admin import EventFilter, parse_limit
from core.domain.errors import ApiError
from core.domain.events import client_ip_var
from handlers import params
from handlers.base import JsonHandler, wait_for

_CORS_HEADERS = (
    "Vary",
    "Access-Control-Allow-Origin",
    "Access-Control-Expose-Headers",
)
USER = r"([^/]{1,64})"


class AdminHandler(JsonHandler):
    route_pattern = "/admin"
    admin_name = "-"

    @property
    def route_label(self) -> str:
        return self.route_pattern  # the pattern: user ids would make a label per user

    def set_default_headers(self) -> None:
        super().set_default_headers()
        for name in _CORS_HEADERS:
            self.clear_header(name)
        self.set_header("Cache-Control", "no-store")

    async def prepare(self) -> None:
        await wait_for(super().prepare())
        admin = self.services.admin
        if not admin.keys.configured:
            raise ApiError(404, "not_found", "There is no such resource.")
        await admin.limit_address(client_ip_var.get())
        self.admin_name = admin.authenticate(params.bearer_token(self.header("Authorization")))

    def optional(self, name: str) -> str | None:
        return self.param(name, required=False)

    def event_filter(self) -> EventFilter:
        return EventFilter.parse(
            self.optional("user"),
            self.optional("type"),
            self.optional("since"),
            self.optional("until"),
        )


class UsersHandler(AdminHandler):
    route_pattern = "/admin/users"

    async def get(self) -> None:
        found = await self.services.admin.find_users(
            self.optional("query") or "",
            limit=parse_limit(self.optional("limit")),
            cursor=self.optional("cursor") or None,
        )
        self.write_json(found)


class UserHandler(AdminHandler):
    route_pattern = "/admin/users/{id}"

    async def get(self, user_id: str) -> None:
        self.write_json(await self.services.admin.user(user_id))

    async def delete(self, user_id: str) -> None:
        self.write_json(await self.services.admin.delete(user_id, self.admin_name))


class DisableHandler(AdminHandler):
    route_pattern = "/admin/users/{id}/disable"

    async def post(self, user_id: str) -> None:
        self.write_json(await self.services.admin.disable(user_id, self.admin_name))


class EnableHandler(AdminHandler):
    route_pattern = "/admin/users/{id}/enable"

    async def post(self, user_id: str) -> None:
        self.write_json(await self.services.admin.enable(user_id, self.admin_name))


class RevokeSessionsHandler(AdminHandler):
    route_pattern = "/admin/users/{id}/sessions/revoke"

    async def post(self, user_id: str) -> None:
        self.write_json(await self.services.admin.revoke_sessions(user_id, self.admin_name))


class ResetMfaHandler(AdminHandler):
    route_pattern = "/admin/users/{id}/mfa/reset"

    async def post(self, user_id: str) -> None:
        self.write_json(await self.services.admin.reset_mfa(user_id, self.admin_name))


class EventsHandler(AdminHandler):
    route_pattern = "/admin/events"

    async def get(self) -> None:
        page = await self.services.admin.events(
            self.event_filter(),
            limit=parse_limit(self.optional("limit")),
            cursor=self.optional("cursor") or None,
        )
        self.write_json(page)


class EventsExportHandler(AdminHandler):
    route_pattern = "/admin/events/export"

    async def get(self) -> None:
        selected = self.event_filter()  # a bad parameter is a 400 before anything is sent
        self.set_header("Content-Type", f"{export_type(self.header('Accept'))}; charset=UTF-8")
        self.set_header("Content-Disposition", 'attachment; filename="vhod-events.jsonl"')
        async for page in self.services.admin.export(selected):
            self.write("".join(json.dumps(event, sort_keys=True) + "\n" for event in page))
            await self.flush()  # a page at a time: the export is never held in memory
        self.finish()


NDJSON, TEXT = "application/x-ndjson", "text/plain"
_Q_ZERO = re.compile(r"^[qQ]\s*=\s*0(\.0{0,3})?$")


def export_type(accept: str | None) -> str:
    """JSON Lines as `application/x-ndjson`, or as `text/plain` for a client that asks for
    that and not for the other (openapi.yaml describes both)."""
    named = set()
    for part in (accept or "").split(",")[:32]:  # a header is bounded; so is the work
        media, *params = part.split(";")
        refused = any(_Q_ZERO.match(p.strip()) for p in params)
        if not refused:  # q=0 (or 0.0, 0.000) is "not this one"
            named.add(media.strip().lower())
    return TEXT if TEXT in named and NDJSON not in named else NDJSON


def admin_routes() -> list[tuple[str, Any]]:
    return [
        (r"/admin/users", UsersHandler),
        (rf"/admin/users/{USER}", UserHandler),
        (rf"/admin/users/{USER}/disable", DisableHandler),
        (rf"/admin/users/{USER}/enable", EnableHandler),
        (rf"/admin/users/{USER}/sessions/revoke", RevokeSessionsHandler),
        (rf"/admin/users/{USER}/mfa/reset", ResetMfaHandler),
        (r"/admin/events", EventsHandler),
        (r"/admin/events/export", EventsExportHandler),
    ]
