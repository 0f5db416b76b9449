"""The identities of an account under /authorization/identities: list, link, unlink. Each
parses, calls core.domain.identities, renders."""

from __future__ import annotations

from handlers.account import AccountHandler


class IdentitiesHandler(AccountHandler):
    async def get(self) -> None:
        caller = await self.current_user()
        self.set_header("Cache-Control", "no-store")
        self.write_json(await self.services.identities.view(caller.user))


class IdentityLinkHandler(AccountHandler):
    address_limited = True  # it calls the provider, like /<prefix>/login

    async def post(self) -> None:
        caller = await self.current_user()
        view = await self.services.identities.link_with_token(
            caller.user,
            self.param("provider"),
            self.param("access_token"),
            self.accept_language,
        )
        self.set_header("Cache-Control", "no-store")
        self.write_json(view)


class IdentityLinkStartHandler(AccountHandler):
    address_limited = True

    async def post(self) -> None:
        caller = await self.current_user()
        self.write_json(await self.services.identities.start(caller.user, self.param("provider")))


class IdentityUnlinkHandler(AccountHandler):
    async def post(self) -> None:
        caller = await self.current_user()
        identities = self.services.identities
        await identities.unlink(caller.user, self.param("provider"), self.accept_language)
        self.write_json(True)
