"""core.domain.identities without HTTP: how an identity is shown, what account_exists names, the
registration rule, the passkey hook, the notice texts."""

from __future__ import annotations

import dataclasses

import pytest

from core.domain.accounts import identity_display
from core.domain.errors import ApiError
from core.domain.identities import sign_in_methods
from core.infra.delivery import Templates
from providers.profile import Profile
from storage.base import Identity, User


def test_an_identity_shows_the_providers_name_else_a_masked_email():
    assert identity_display(Profile("p", "1", first_name="Ivan", last_name="Petrov")) == (
        "Ivan Petrov"
    )
    assert identity_display(Profile("p", "1", email="ann@example.com")) == "a***@example.com"
    assert identity_display(Profile("p", "1")) is None
    assert len(identity_display(Profile("p", "1", first_name="x" * 1000)) or "") == 128


def test_account_exists_names_kinds_of_sign_in_only():
    user = User(
        id="u1",
        email="ann@example.com",
        password_hash="h",
        identities=[Identity("yandex", "1"), Identity("mailru", "2")],
    )
    assert sign_in_methods(user) == ["password", "mailru", "yandex"]
    assert sign_in_methods(dataclasses.replace(user, password_hash=None), passkeys=2) == [
        "mailru",
        "yandex",
        "passkey",
    ]


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize("purpose", ["linked", "unlinked"])
def test_the_notices_name_the_provider(language, purpose):
    subject, body = Templates().email(purpose, language, provider="Yandex ID")
    assert subject and "Yandex ID" in body and "$" not in body


@pytest.fixture
def config_overrides():
    return {"social.link_verified_email": True}


async def test_the_registration_rule(services):
    identities, store = services.identities, services.store
    ann = User(id="ann", email="ann@example.com", phone="+79161234567", password_hash="h")
    await store.create_user(ann)
    vouched = Profile("yandex", "y1", email="ann@example.com", email_verified=True)

    # The account never verified its email: no link, even with link_verified_email.
    with pytest.raises(ApiError) as refused:
        await identities.before_registration(vouched)
    assert (refused.value.status, refused.value.code) == (409, "account_exists")
    assert refused.value.body()["methods"] == ["password"]
    # An address the provider does not vouch for meets nobody.
    assert (
        await identities.before_registration(dataclasses.replace(vouched, email_verified=False))
        is None
    )
    phone = Profile("vk", "v1", phone="+79161234567", phone_verified=True)
    with pytest.raises(ApiError) as by_phone:
        await identities.before_registration(phone)
    assert by_phone.value.code == "account_exists"

    await store.set_verified("ann", "email", "ann@example.com")
    linked = await identities.before_registration(vouched)
    assert linked is not None and linked.id == "ann"
    found = await store.find_user_by_identity("yandex", "y1")
    assert found is not None and found.id == "ann"
    # A phone match still never links by itself.
    with pytest.raises(ApiError):
        await identities.before_registration(phone)


async def test_a_passkey_counts_as_a_way_in_once_its_count_is_wired(services):
    identities, store = services.identities, services.store
    await store.create_user(User(id="p", identities=[Identity("yandex", "y9")]))
    user = await store.get_user("p")
    assert user is not None
    with pytest.raises(ApiError) as last:
        await identities.unlink(user, "yandex", None)
    assert last.value.code == "last_sign_in_method"
    assert (await identities.view(user))["passkeys"] == 0

    async def one_passkey(user_id: str) -> int:
        return 1

    identities.passkey_count = one_passkey
    assert (await identities.view(user))["passkeys"] == 1
    await store.create_user(User(id="q", email="q@example.com", identities=[Identity("vk", "1")]))
    with pytest.raises(ApiError) as exists:
        await identities.before_registration(
            Profile("yandex", "y2", email="q@example.com", email_verified=True)
        )
    assert exists.value.body()["methods"] == ["vk", "passkey"]
    assert await identities.unlink(user, "yandex", None) is True
    assert await store.find_user_by_identity("yandex", "y9") is None
