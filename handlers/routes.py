"""The route table: every path vhod serves, in the order of the table in docs/routes.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from handlers import account, auth, code, identities, ops, passkeys, validate, wellknown
from handlers.admin import admin_routes
from handlers.docs import docs_routes
from handlers.mfa import mfa_routes
from handlers.social import provider_routes

if TYPE_CHECKING:
    from core.domain.services import Services


def routes(services: Services, *, listener: str = "main") -> list[Any]:
    """The main server's table, or the admin listener's (`listener="admin"`, admin.port set):
    the admin routes are on one of the two, never both."""
    if listener == "admin":
        return [*admin_routes(), (r"/healthz", ops.HealthHandler)]
    # Tornado tries the routes in order: the token checks, most of the traffic, first.
    table: list[Any] = [
        (r"/validate/jwt/access", validate.AccessHandler),
        (r"/validate/jwt/refresh", validate.RefreshHandler),
        (r"/authorization/registration", auth.RegistrationHandler),
        (r"/authorization/login/email", auth.EmailLoginHandler),
        (r"/authorization/login/phone/number", auth.PhoneLoginHandler),
        (r"/authorization/logout", auth.LogoutHandler),
        (r"/authorization/code/send", code.CodeSendHandler),
        (r"/authorization/code/login", code.CodeLoginHandler),
        (r"/authorization/address/add", code.AddressAddHandler),
        (r"/authorization/address/add/confirm", code.AddressAddConfirmHandler),
        (r"/authorization/password/set", code.PasswordSetHandler),
        (r"/authorization/password/reset", account.PasswordResetHandler),
        (r"/authorization/password/reset/confirm", account.PasswordResetConfirmHandler),
        (r"/authorization/password/change", account.PasswordChangeHandler),
        (r"/authorization/verify/email", account.VerifyEmailHandler),
        (r"/authorization/verify/email/confirm", account.VerifyEmailConfirmHandler),
        (r"/authorization/verify/phone", account.VerifyPhoneHandler),
        (r"/authorization/verify/phone/confirm", account.VerifyPhoneConfirmHandler),
        (r"/authorization/sessions", account.SessionsHandler),
        (r"/authorization/sessions/revoke", account.SessionsRevokeHandler),
        (r"/authorization/account/delete/code", account.DeletionCodeHandler),
        (r"/authorization/account/delete", account.AccountDeleteHandler),
        (r"/authorization/identities", identities.IdentitiesHandler),
        (r"/authorization/identities/link", identities.IdentityLinkHandler),
        (r"/authorization/identities/link/start", identities.IdentityLinkStartHandler),
        (r"/authorization/identities/unlink", identities.IdentityUnlinkHandler),
        (r"/authorization/passkeys", passkeys.ListHandler),
        (r"/authorization/passkeys/register/options", passkeys.RegisterOptionsHandler),
        (r"/authorization/passkeys/register", passkeys.RegisterHandler),
        (r"/authorization/passkeys/rename", passkeys.RenameHandler),
        (r"/authorization/passkeys/delete", passkeys.DeleteHandler),
        (r"/authorization/passkeys/login/options", passkeys.LoginOptionsHandler),
        (r"/authorization/passkeys/login", passkeys.LoginHandler),
        *mfa_routes(),  # /authorization/mfa, …/totp/…, …/recovery_codes/…, …/verify
        *provider_routes(services.providers),  # /<prefix>/link, callback, get/token, …
        (r"/.well-known/jwks.json", wellknown.JwksHandler),
        (r"/.well-known/openid-configuration", wellknown.DiscoveryHandler),
        (r"/healthz", ops.HealthHandler),
        (r"/readyz", ops.ReadyHandler),
        *docs_routes(services.providers),  # /docs, /openapi.json
    ]
    if services.config.metrics.enabled:
        table.append((r"/metrics", ops.MetricsHandler))
    if services.config.admin.port is None:
        table += admin_routes()  # /admin/…: 404 until an admin key is configured
    return table
