"""Liveness and readiness probes for orchestrators and load balancers."""

from __future__ import annotations

from core.domain.errors import storage_unavailable
from core.infra.metrics import CONTENT_TYPE
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


class MetricsHandler(JsonHandler):
    """Prometheus exposition of this process's metrics."""

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(self.services.metrics.render())
