"""Token checks under /validate/jwt/: GET as in the original, POST to keep tokens out of URLs."""

from __future__ import annotations

from core.domain.errors import ApiError
from handlers.base import JsonHandler


class RefreshHandler(JsonHandler):
    async def get(self) -> None:
        result = await self.services.accounts.refresh(self.token_param("refresh"))
        self.services.metrics.token_refreshed("refresh" in result)
        self.write_json(result, token=True)

    post = get


class AccessHandler(JsonHandler):
    def get(self) -> None:
        try:
            token = self.token_param("access")
        except ApiError:
            # Only a missing parameter is a 400; any value given (empty, a number, an
            # object) is a token that does not check out, and the answer stays a boolean.
            if "access" not in self.params:
                raise
            token = ""
        self.write_json(self.services.accounts.validate_access(token))

    post = get
