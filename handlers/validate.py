"""Token checks under /validate/jwt/: GET as in the original, POST to keep tokens out of URLs."""

from __future__ import annotations

from handlers.base import JsonHandler


class RefreshHandler(JsonHandler):
    async def get(self) -> None:
        result = await self.services.accounts.refresh(self.token_param("refresh"))
        rotated = "true" if "refresh" in result else "false"
        self.services.metrics.tokens_refreshed.labels(rotated).inc()
        self.write_json(result, token=True)

    post = get


class AccessHandler(JsonHandler):
    def get(self) -> None:
        self.write_json(self.services.accounts.validate_access(self.token_param("access")))

    post = get
