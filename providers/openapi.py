"""The five routes of every installed provider, the seed's three included, as OpenAPI path
items generated from the registry (plugins and `type: oidc` sections too) for /openapi.json
and /docs: openapi.yaml describes no provider route by hand.

The components they point at (#/components/...) are openapi.yaml's, shared by all providers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from providers.base import OAuthProvider

_RESPONSE = "#/components/responses/"
_PARAMETER = "#/components/parameters/"


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": kind + name}


def _responses(**codes: str) -> dict[str, Any]:
    table = {code.removeprefix("s"): _ref(_RESPONSE, name) for code, name in codes.items()}
    table.update(
        {"429": _ref(_RESPONSE, "RateLimited"), "503": _ref(_RESPONSE, "ProviderUnusable")}
    )
    return dict(sorted(table.items()))


def operation_prefix(name: str) -> str:
    """`op_basic` → `opBasic`: operation ids read like the seed's (`vkLink`, `mailruLogin`)."""
    first, *rest = re.split(r"[^a-z0-9]+", name)
    return first + "".join(part.capitalize() for part in rest)


def provider_path_items(provider: OAuthProvider) -> dict[str, dict[str, Any]]:
    """`/<prefix>/link`, `callback`, `get/token`, `registration` and `login` of one provider."""
    title, op = provider.title, operation_prefix(provider.name)
    device = "device_id" in provider.callback_params
    common = {"tags": [title], "security": []}

    def get(suffix: str, summary: str, description: str | None, **fields: Any) -> dict[str, Any]:
        operation: dict[str, Any] = {**common, "operationId": op + suffix, "summary": summary}
        if description:
            operation["description"] = description
        operation.update(fields)
        return {"get": operation}

    return {
        f"/{provider.prefix}/link": get(
            "Link",
            f"The {title} authorization URL for a fresh state",
            "Creates a single-use `state` (and a PKCE verifier, kept on the server) valid for "
            "10 minutes and returns the provider's authorization URL. With `redirect=1` it "
            "answers 302 there and sets the cookie `vhod_flow` that binds the sign-in to "
            f"this browser (HttpOnly; SameSite=Lax; Path=/{provider.prefix}/; Max-Age=600; "
            "Secure with an https public_url).",
            parameters=[_ref(_PARAMETER, "RedirectQuery")],
            responses=_responses(s200="AuthorizationUrl", s302="ToProvider"),
        ),
        f"/{provider.prefix}/callback": get(
            "Callback",
            f"Where {title} sends the browser back",
            "Checks `state` and the `vhod_flow` cookie of a browser-started sign-in (400 "
            "`invalid_state`: started in another browser). With `frontend_redirect` "
            "configured, answers 302 to it with only code, state and the provider's declared "
            "values, or, for an error, error, error_description and state; otherwise "
            "exchanges the code here. A provider error has a fixed description per code "
            "(unknown codes: `provider_error`).",
            parameters=[
                _ref(_PARAMETER, "CallbackCode"),
                _ref(_PARAMETER, "CallbackState"),
                *([_ref(_PARAMETER, "CallbackDeviceId")] if device else []),
                _ref(_PARAMETER, "CallbackError"),
                _ref(_PARAMETER, "CallbackErrorDescription"),
            ],
            responses=_responses(
                s200="ProviderTokens",
                s302="ToFrontEnd",
                s400="CallbackRefused",
                s502="ProviderUnavailable",
            ),
        ),
        f"/{provider.prefix}/get/token": get(
            "GetToken",
            f"Exchange a {title} authorization code for the provider's tokens",
            "Reads the `vhod_flow` cookie. 400 `invalid_request` for a malformed code"
            + (" or device_id" if device else "")
            + ", or a missing state when `social.require_binding` is on. For a link flow's "
            "state (`/authorization/identities/link/start`) it needs that account's access "
            "token as `Authorization: Bearer`, links the identity and answers the account's "
            "identities instead of tokens.",
            parameters=[
                _ref(_PARAMETER, "Code"),
                _ref(_PARAMETER, "State"),
                *([_ref(_PARAMETER, "DeviceId")] if device else []),
            ],
            responses=_responses(
                s200="ProviderTokensOrLinked",
                s400="ExchangeRefused",
                s401="InvalidAccessToken",
                s403="AccountRefused",
                s409="LinkRefused",
                s502="ProviderUnavailable",
            ),
        ),
        f"/{provider.prefix}/registration": get(
            "Registration",
            f"Register the {title} user that owns an access token",
            "Accepts a token this server's own `get/token` returned, or one the provider "
            "proves was issued to this application; 401 `invalid_provider_token` otherwise "
            "(also for a malformed token).",
            parameters=[_ref(_PARAMETER, "ProviderAccessToken")],
            responses=_responses(
                s200="TokenPair",
                s400="InvalidRequest",
                s401="InvalidProviderToken",
                s409="IdentityExists",
                s502="ProviderUnavailable",
            ),
        ),
        f"/{provider.prefix}/login": get(
            "Login",
            f"Sign in the {title} user that owns an access token",
            None,
            parameters=[_ref(_PARAMETER, "ProviderAccessToken")],
            responses=_responses(
                s200="SignedIn",
                s400="InvalidRequest",
                s401="InvalidProviderToken",
                s403="AccountDisabled",
                s404="UserNotFound",
                s502="ProviderUnavailable",
            ),
        ),
    }


def with_providers(
    spec: Mapping[str, Any], providers: Mapping[str, OAuthProvider]
) -> dict[str, Any]:
    """A copy of `spec` that also describes every provider it does not describe yet, each
    under a tag of its own; the document's own path items stay as they are."""
    paths = dict(spec["paths"])
    tags = list(spec.get("tags", []))
    known_tags = {tag["name"] for tag in tags}
    # Provider routes go where the document keeps them: before the first non-provider path
    # that follows its last provider path (the JWKS).
    keys = list(paths)
    position = keys.index("/.well-known/jwks.json") if "/.well-known/jwks.json" in keys else None
    generated: dict[str, Any] = {}
    for provider in providers.values():
        items = provider_path_items(provider)
        if any(path in paths for path in items):
            continue  # a path openapi.yaml describes stays as written there
        generated.update(items)
        if provider.title not in known_tags:
            known_tags.add(provider.title)
            tags.append(
                {
                    "name": provider.title,
                    "description": f"Social sign-in through {provider.title}, URL prefix "
                    f"`/{provider.prefix}/`.",
                }
            )
    if position is None:
        merged = {**paths, **generated}
    else:
        merged = {**dict(zip(keys[:position], [paths[k] for k in keys[:position]], strict=True))}
        merged.update(generated)
        merged.update({k: paths[k] for k in keys[position:]})
    return {**spec, "tags": tags, "paths": merged}
