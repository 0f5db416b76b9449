"""Liveness and readiness probes for orchestrators and load balancers."""

from __future__ import annotations

from core.errors import storage_unavailable
from handlers.base import JsonHandler
from storage.base import StorageUnavailable


class HealthHandler(JsonHandler):
    def get(self) -> None:
        self.write_json({"status": "ok"})


class ReadyHandler(JsonHandler):
    async def get(self) -> None:
        try:
            await self.services.store.ping()
        except StorageUnavailable as exc:
            raise storage_unavailable() from exc
        self.write_json({"status": "ok", "storage": self.services.store.kind})
