"""OpenID Connect id_tokens: the provider's keys (JWKS, refetched on an unknown kid at most
once a minute) and the checks of OIDC Core §3.1.3.7, with PyJWT."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any

import jwt
from tornado.httpclient import HTTPClientError, HTTPRequest

from core.domain.errors import ApiError

if TYPE_CHECKING:
    from providers.oidc import GenericProvider

JWKS_REFETCH_SECONDS = 60.0  # an unknown kid re-reads the keys at most this often
LEEWAY_SECONDS = 60  # clock skew allowed on exp / iat / nbf
MAX_DOCUMENT_BYTES = 256 * 1024
# Asymmetric only: an HMAC id_token would be keyed with our client_secret, which a public
# client has not got, and "none" is never acceptable (OIDC Core §3.1.3.7 item 7).
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def nonce_for(code_challenge: str) -> str:
    """The nonce sent with one authorization request, derived from its PKCE challenge: the
    flow keeps only the verifier server-side, and the exchange recomputes it from that."""
    digest = hashlib.sha256(b"vhod-oidc-nonce." + code_challenge.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def fetch_document(provider: GenericProvider, url: str, what: str) -> dict[str, Any]:
    """GET a JSON document the provider publishes; 503 provider_unavailable otherwise."""
    request = HTTPRequest(
        url,
        headers={"Accept": "application/json", "User-Agent": "vhod"},
        connect_timeout=provider.connect_timeout,
        request_timeout=provider.request_timeout,
        validate_cert=True,
        follow_redirects=False,  # OA5: the configured host only
        **provider.channel.tls(),  # type: ignore[arg-type]
    )
    reason = None
    try:
        response = await provider.http_client.fetch(request, raise_error=False)
    except (HTTPClientError, OSError) as exc:
        reason = f"cannot be reached ({type(exc).__name__})"
    else:
        if response.code != 200:
            reason = f"answered HTTP {response.code}"
        elif len(response.body or b"") > MAX_DOCUMENT_BYTES:
            reason = "answered a document too large"
        else:
            try:
                document = json.loads(response.body)
            except ValueError:
                document = None
            if isinstance(document, dict):
                return document
            reason = "answered something that is not a JSON object"
    raise ApiError(503, "provider_unavailable", f"{provider.title} {what} {reason}.")


class IdTokenChecker:
    """The keys of one provider and the id_token checks made with them."""

    def __init__(
        self,
        provider: GenericProvider,
        jwks_uri: str,
        issuer: str,
        *,
        algorithms: list[Any],
        nonce_required: bool = True,
    ) -> None:
        self.provider = provider
        # False: a missing nonce is accepted (one present must still match). For a provider
        # that may leave it out of a redirect flow's id_token (Telegram): the code is bound
        # to our PKCE verifier and the id_token comes over our own TLS call, so a missing
        # nonce cannot let in an id_token of another sign-in.
        self.nonce_required = nonce_required
        self.jwks_uri = jwks_uri
        self.issuer = issuer
        self.algorithms = sorted(ASYMMETRIC & {a for a in algorithms if isinstance(a, str)})
        self.keys: dict[str, jwt.PyJWK] = {}
        self.fetched_at: float | None = None
        self.fetches = 0

    async def refresh(self) -> None:
        document = await fetch_document(self.provider, self.jwks_uri, "key set (JWKS)")
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys") or []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                continue  # a key type PyJWT does not know: unusable, not fatal
            keys[str(entry.get("kid", ""))] = key
        self.keys = keys
        self.fetched_at = self.provider.clock()
        self.fetches += 1

    async def key_for(self, kid: str) -> jwt.PyJWK | None:
        if kid not in self.keys and (
            self.fetched_at is None
            or self.provider.clock() - self.fetched_at >= JWKS_REFETCH_SECONDS
        ):
            # The provider rotated its keys: follow, but at most once a minute, so that
            # made-up kids cannot make us hammer the provider.
            try:
                await self.refresh()
            except ApiError:
                return None
        return self.keys.get(kid)

    async def check(self, id_token: Any, *, code_verifier: str) -> dict[str, Any]:
        """The claims of a valid id_token for our client and this flow's nonce; else 502."""
        title, client_id = self.provider.title, self.provider.settings.client_id
        if not isinstance(id_token, str) or not id_token:
            raise _bad(title, "answered without an id_token")
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise _bad(title, "answered an id_token that is no JWT") from exc
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise _bad(title, f"signed its id_token with an algorithm not allowed ({algorithm})")
        key = await self.key_for(str(header.get("kid", "")))
        if key is None:
            raise _bad(title, "signed its id_token with a key not in its JWKS")
        try:
            claims = jwt.decode(
                id_token,
                key=key,
                algorithms=[algorithm],
                audience=client_id,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise _bad(title, f"answered an id_token that does not hold: {exc}") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        if (azp is not None or len(audiences) > 1) and azp != client_id:
            raise _bad(title, "answered an id_token authorized for another party (azp)")
        nonce = claims.get("nonce")
        expected = nonce_for(challenge_of(code_verifier))
        if nonce is None and not self.nonce_required:
            return claims
        if not isinstance(nonce, str) or not hmac.compare_digest(nonce, expected):
            raise _bad(title, "answered an id_token for another sign-in (nonce)")
        return claims


def _bad(title: str, reason: str) -> ApiError:
    return ApiError(502, "provider_unavailable", f"{title} {reason}.")
