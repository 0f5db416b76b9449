"""The whole service on MongoDB over a real wire connection: concurrency and outages."""

import asyncio
import uuid

import pytest

from tests.storage_fixtures import with_database

REGISTER = "/authorization/registration"
REFRESH = "/validate/jwt/refresh"


@pytest.fixture
def config_overrides(mongo_url):
    return {
        "storage.url": with_database(mongo_url, f"vhod_app_{uuid.uuid4().hex[:12]}"),
        "jwt.rotate_refresh": True,
        "limits.per_ip_per_minute": 10_000,
    }


async def test_registration_login_refresh_on_mongodb(api, user, services):
    assert services.store.kind == "mongodb"
    tokens = (await api.post(REGISTER, json_body=user)).body
    login = await api.post(
        "/authorization/login/phone/number",
        json_body={"phone_number": "8 916 123 45 67", "hash_password": user["hash_password"]},
    )
    assert login.status == 200
    refreshed = await api.get(REFRESH, query={"refresh": tokens["refresh"]})
    assert refreshed.status == 200 and refreshed.body["email"] == user["email"]
    assert (await api.get("/readyz")).body["storage"] == "mongodb"


async def test_parallel_registrations_exactly_one_wins_on_mongodb(api, user):
    responses = await asyncio.gather(
        *(
            api.post(REGISTER, json_body={**user, "phone_number": f"+7916000{i:04d}"})
            for i in range(12)
        )
    )
    assert sorted(r.status for r in responses) == [200] + [409] * 11


async def test_concurrent_refreshes_give_one_successor_on_mongodb(api, user):
    token = (await api.post(REGISTER, json_body=user)).body["refresh"]
    responses = await asyncio.gather(
        *(api.get(REFRESH, query={"refresh": token}) for _ in range(10))
    )
    assert sorted(r.status for r in responses) == [200] + [401] * 9
