"""Social sign-in providers: one OAuth 2.0 base class, small provider modules, a registry."""

from providers.base import (
    OAuthProvider,
    Profile,
    ProviderRequest,
    ProviderSettings,
    ProviderTokens,
    code_challenge,
    new_code_verifier,
    new_state,
)
from providers.registry import (
    BUILTIN_PROVIDERS,
    ProviderRegistryError,
    build_providers,
    by_prefix,
    discover_providers,
)

__all__ = [
    "BUILTIN_PROVIDERS",
    "OAuthProvider",
    "Profile",
    "ProviderRegistryError",
    "ProviderRequest",
    "ProviderSettings",
    "ProviderTokens",
    "build_providers",
    "by_prefix",
    "code_challenge",
    "discover_providers",
    "new_code_verifier",
    "new_state",
]
