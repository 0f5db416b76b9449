"""While the database is unreachable, requests get 503 and nothing is half-written; the
service recovers by itself when the database is back."""

import asyncio

import pytest

from tests.storage_fixtures import NxServer, with_database

REGISTER = "/authorization/registration"


@pytest.fixture
def outage_server(tmp_path):
    # A file-backed server, so that data and indexes outlive the restart, as with mongod.
    server = NxServer(tmp_path / "nx", db=str(tmp_path / "nx.db"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def config_overrides(outage_server):
    return {"storage.url": with_database(outage_server.url, "vhod_outage")}


async def test_unreachable_database_answers_503_and_recovers(api, user, outage_server):
    assert (await api.get("/readyz")).status == 200
    outage_server.stop()
    down = await api.post(REGISTER, json_body=user)
    assert (down.status, down.body["error"]) == (503, "storage_unavailable")
    assert (await api.get("/readyz")).status == 503
    login = await api.post(
        "/authorization/login/email",
        json_body={"email": user["email"], "hash_password": user["hash_password"]},
    )
    assert login.status == 503
    outage_server.start()
    for _ in range(50):
        if (await api.get("/readyz")).status == 200:
            break
        await asyncio.sleep(0.1)
    # Nothing was half-written during the outage: the same registration now succeeds once.
    assert (await api.post(REGISTER, json_body=user)).status == 200
    assert (await api.post(REGISTER, json_body=user)).status == 409
