"""While the database is unreachable, requests get 503 and nothing is half-written; the
service recovers by itself when the database is back, with its unique indexes."""

import pytest
from pymongo.errors import OperationFailure

from tests.storage_fixtures import NxServer, with_database

REGISTER = "/authorization/registration"


@pytest.fixture(params=["file", "memory"])
def outage_server(request, tmp_path):
    # "file": data and indexes outlive the restart, as with mongod. "memory": the server
    # comes back empty, as a recreated database does.
    db = str(tmp_path / "nx.db") if request.param == "file" else "memory"
    server = NxServer(tmp_path / "nx", db=db)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def config_overrides(outage_server):
    # Each request during the outage waits out the server selection: one second, not two.
    url = with_database(outage_server.url, "vhod_outage") + "?serverSelectionTimeoutMS=1000"
    return {"storage.url": url}


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
    # The driver finds the server again within its server-selection timeout: the first
    # probe after the restart succeeds, with no retry loop.
    assert (await api.get("/readyz")).status == 200
    # Nothing was half-written during the outage, and uniqueness came back with the
    # server (D17): the same registration now succeeds exactly once.
    assert (await api.post(REGISTER, json_body=user)).status == 200
    assert (await api.post(REGISTER, json_body=user)).status == 409


@pytest.mark.parametrize("outage_server", ["file"], indirect=True)
async def test_a_transient_server_error_is_503_and_a_bug_is_500(
    api, user, services, monkeypatch, outage_server
):
    failure = OperationFailure("shutting down", code=91)

    async def failing(*args, **kwargs):
        raise failure

    monkeypatch.setattr(services.store.users, "insert_one", failing)
    response = await api.post(REGISTER, json_body=user)
    assert (response.status, response.body["error"]) == (503, "storage_unavailable")
    failure = OperationFailure("unknown operator: $bogus", code=2)
    response = await api.post(REGISTER, json_body=user)
    assert (response.status, response.body["error"]) == (500, "server_error")
