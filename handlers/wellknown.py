"""/.well-known/: the public keys that verify vhod's tokens (RFC 7517) and discovery metadata."""

from __future__ import annotations

from handlers.base import JsonHandler


class JwksHandler(JsonHandler):
    cacheable = True

    def get(self) -> None:
        document, max_age = self.services.keys.jwks()
        self.set_header("Cache-Control", f"public, max-age={max_age}")
        self.write_json(document)


class DiscoveryHandler(JsonHandler):
    cacheable = True

    def get(self) -> None:
        config = self.services.config
        document = self.services.keys.discovery(
            config.jwt.issuer, f"{config.public_url}/.well-known/jwks.json"
        )
        self.set_header("Cache-Control", "public, max-age=3600")
        self.write_json(document)
