"""Signing keys: the KEK, key pairs and PEM import, the rotation schedule, the key manager."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from core.config import ConfigError, masked
from core.infra.clock import FakeClock
from core.signing.kek import KEK_FILE, KeyEncryptionKey, UndecryptableKey, load_kek
from core.signing.key_manager import KeyManager, jwks_max_age, refresh_interval
from core.signing.keys import (
    CURRENT,
    EXPIRED,
    NEXT,
    RETIRED,
    KeyRing,
    RotationPolicy,
    generate_private_key,
    load_private_pem,
    seal,
    states,
    successor_due,
    unseal,
)
from server import build_services
from storage import SigningKey, StorageUnavailable, Store
from tests.conftest import make_config

KEK = KeyEncryptionKey(b"k" * 32)
POLICY = RotationPolicy(interval=1000, lead=100, retention=500)
T0 = 1_800_000_000.0


def record(generation: int, activates_at: float, algorithm: str = "ES256") -> SigningKey:
    return seal(
        generate_private_key(algorithm),
        generation=generation,
        activates_at=activates_at,
        now=activates_at,
        kek=KEK,
    )


# --- the key-encryption key ---


def test_kek_round_trip_and_refusals():
    key = generate_private_key("ES256")
    stored = seal(key, generation=1, activates_at=T0, now=T0, kek=KEK)
    assert "PRIVATE" not in stored.private_key and stored.private_key.startswith("v1.")
    assert unseal(stored, KEK).private_numbers() == key.private_numbers()
    with pytest.raises(UndecryptableKey, match=r"jwt\.key_encryption_key"):
        unseal(stored, KeyEncryptionKey(b"o" * 32))
    other = seal(key, generation=2, activates_at=T0, now=T0, kek=KEK)
    swapped = SigningKey(**{**vars(other), "private_key": stored.private_key})
    with pytest.raises(UndecryptableKey):  # the kid is bound in: a copied ciphertext fails
        unseal(swapped, KEK)
    with pytest.raises(ValueError, match="32 bytes"):
        KeyEncryptionKey(b"short")


def test_kek_generated_once_owner_only_but_never_for_a_shared_store(tmp_path):
    first = load_kek(None, str(tmp_path), shared_store=False)
    mode = stat.S_IMODE(os.stat(tmp_path / KEK_FILE).st_mode)
    assert mode == 0o600
    sealed = first.encrypt(b"x", "kid")
    assert load_kek(None, str(tmp_path), shared_store=False).decrypt(sealed, "kid") == b"x"
    with pytest.raises(ValueError, match=r"jwt\.key_encryption_key: required"):
        load_kek(None, str(tmp_path / "other"), shared_store=True)
    assert not (tmp_path / "other" / KEK_FILE).exists()


def test_a_short_or_missing_kek_stops_the_start_and_a_set_one_is_masked(tmp_path):
    with pytest.raises(ConfigError, match=r"jwt\.key_encryption_key"):
        make_config(tmp_path, **{"jwt.key_encryption_key": "short"})
    with pytest.raises(ConfigError, match=r"jwt\.key_encryption_key: required with MongoDB"):
        make_config(
            tmp_path, **{"jwt.algorithm": "EdDSA", "storage.url": "mongodb://127.0.0.1/vhod"}
        )
    config = make_config(tmp_path, **{"jwt.key_encryption_key": "k" * 40})
    assert masked(config)["jwt"]["key_encryption_key"] == "***"


# --- key pairs and import ---


@pytest.mark.parametrize(
    ("make", "algorithm"),
    [
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (ed25519.Ed25519PrivateKey.generate, "EdDSA"),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
    ],
)
def test_pem_import_infers_the_algorithm(make, algorithm):
    pem = make().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    assert load_private_pem(pem, b"pw")[0] == algorithm


@pytest.mark.parametrize(
    "make",
    [
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
    ],
    ids=["p384", "rsa1024"],
)
def test_pem_import_refuses_keys_vhod_does_not_sign_with(make):
    pem = make().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError):
        load_private_pem(pem)
    with pytest.raises(ValueError):
        load_private_pem(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")


# --- the schedule ---


def test_first_key_signs_at_once_and_later_ones_after_the_lead():
    assert successor_due([], T0, POLICY, "ES256") == T0
    first = record(1, T0)
    assert successor_due([first], T0 + 899, POLICY, "ES256") is None
    # Due `lead` before the interval ends; it signs when the interval ends.
    assert successor_due([first], T0 + 900, POLICY, "ES256") == T0 + 1000
    # Late (every instance was down): still published `lead` before it signs.
    assert successor_due([first], T0 + 5000, POLICY, "ES256") == T0 + 5100
    # A key waiting to sign: nothing more, however many instances ask, forced or not.
    waiting = record(2, T0 + 1000)
    assert successor_due([first, waiting], T0 + 950, POLICY, "ES256", force=True) is None
    # Forced, or another algorithm configured: after the lead.
    assert successor_due([first], T0 + 10, POLICY, "ES256", force=True) == T0 + 110
    assert successor_due([first], T0 + 10, POLICY, "EdDSA") == T0 + 110


def test_states_publish_next_current_and_retired_until_the_retention_ends():
    first, second = record(1, T0), record(2, T0 + 1000)
    assert [s for _, s, _ in states([first, second], T0 + 950, 500)] == [CURRENT, NEXT]
    assert [s for _, s, _ in states([second, first], T0 + 1000, 500)] == [RETIRED, CURRENT]
    assert [s for _, s, _ in states([first, second], T0 + 1500, 500)] == [EXPIRED, CURRENT]
    assert [u for _, _, u in states([first, second], T0, 500)] == [T0 + 1500, math.inf]


def test_refresh_and_cache_times_fit_inside_the_lead():
    for lead in (2, 3, 10, 100, 86_400):
        policy = RotationPolicy(interval=lead * 10, lead=lead, retention=1)
        assert refresh_interval(policy) < lead
        assert jwks_max_age(policy) < lead


# --- the ring ---


def test_unknown_kid_wakes_a_refresh_only_for_kids_that_look_like_ours():
    ring = KeyRing(algorithm="ES256")
    seen = []
    ring.on_unknown_kid = seen.append
    assert ring.verifier("AAAAAAAAAAAAAAAA", T0) is None
    assert ring.verifier("../../etc/passwd", T0) is None
    assert seen == ["AAAAAAAAAAAAAAAA"]


# --- the manager, on every store ---


def manager(store: Store, clock: FakeClock, kek: KeyEncryptionKey = KEK) -> KeyManager:
    return KeyManager(store, KeyRing(algorithm="ES256"), POLICY, kek=kek, clock=clock)


async def test_instances_rotating_at_once_add_one_key(store: Store) -> None:
    clock = FakeClock(T0)
    instances = [manager(store, clock) for _ in range(6)]
    await asyncio.gather(*(m.start() for m in instances))
    assert len(await store.list_signing_keys()) == 1
    clock.advance(900)  # due: `lead` before the first key's interval ends
    added = await asyncio.gather(*(m.rotate_if_due() for m in instances))
    assert sum(added) == 1
    keys = await store.list_signing_keys()
    assert [k.generation for k in keys] == [1, 2]
    for m in instances:
        await m.refresh()
        assert m.ring.signer(clock()).kid == keys[0].kid  # the new one waits for the lead
        assert m.ring.signer(T0 + 1000).kid == keys[1].kid
        assert [k["kid"] for k in m.ring.jwks(clock())["keys"]] == [k.kid for k in keys]


class FailingWrites:
    """A store whose writes of signing keys fail as if the database were unreachable."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.failing = True

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    async def add_signing_key(self, key: SigningKey) -> None:
        if self.failing:
            raise StorageUnavailable("connection refused")
        await self.store.add_signing_key(key)


async def test_an_outage_during_rotation_leaves_nothing_half_done(store: Store) -> None:
    clock = FakeClock(T0)
    healthy = manager(store, clock)
    await healthy.start()
    before = await store.list_signing_keys()
    flaky = FailingWrites(store)
    broken = manager(flaky, clock)  # type: ignore[arg-type]
    await broken.refresh()
    clock.advance(950)
    with pytest.raises(StorageUnavailable):
        await broken.rotate_if_due()
    assert await store.list_signing_keys() == before
    assert broken.ring.signer(clock()).kid == before[0].kid  # still signing, unchanged
    flaky.failing = False
    assert await broken.rotate_if_due() is True  # the next attempt completes it
    assert len(await store.list_signing_keys()) == 2


def test_a_kek_that_does_not_decrypt_the_stored_keys_stops_the_start(io_loop, tmp_path):
    settings = {
        "jwt.secret": None,
        "jwt.algorithm": "ES256",
        "jwt.key_encryption_key": "a" * 32,
    }
    first = io_loop.run_sync(lambda: build_services(make_config(tmp_path, **settings)))
    stored = io_loop.run_sync(first.store.list_signing_keys)
    io_loop.run_sync(first.close)
    wrong = make_config(tmp_path, **{**settings, "jwt.key_encryption_key": "b" * 32})
    with pytest.raises(ConfigError, match=r"jwt\.key_encryption_key") as refused:
        io_loop.run_sync(lambda: build_services(wrong))
    assert "nothing was changed" in str(refused.value)
    again = io_loop.run_sync(lambda: build_services(make_config(tmp_path, **settings)))
    assert io_loop.run_sync(again.store.list_signing_keys) == stored  # nothing overwritten
    io_loop.run_sync(again.close)


def test_mongodb_storage_without_a_kek_is_refused_before_anything_starts(io_loop, tmp_path):
    config = make_config(
        tmp_path,
        **{
            "jwt.secret": None,
            "jwt.algorithm": None,  # a new install: ES256, chosen at start
            "storage.url": "mongodb://127.0.0.1:1/vhod",
        },
    )
    with pytest.raises(ConfigError, match="VHOD_JWT__KEY_ENCRYPTION_KEY"):
        io_loop.run_sync(lambda: build_services(config))


async def test_an_unknown_kid_of_ours_wakes_a_read_of_the_store(store: Store) -> None:
    clock = FakeClock(T0)
    slow = RotationPolicy(interval=10_000, lead=1_000, retention=500)  # re-reads every 60 s
    reader = KeyManager(store, KeyRing(algorithm="ES256"), slow, kek=KEK, clock=clock)
    writer = KeyManager(store, KeyRing(algorithm="ES256"), slow, kek=KEK, clock=clock)
    await reader.start()
    maintaining = asyncio.ensure_future(reader.maintain())
    try:
        await writer.rotate_if_due(force=True)
        new = (await store.list_signing_keys())[-1].kid
        assert new not in reader.ring.kids
        assert reader.ring.verifier(new, clock()) is None  # a token names it: wake up
        for _ in range(200):
            if new in reader.ring.kids:
                break
            await asyncio.sleep(0.05)
        assert new in reader.ring.kids
    finally:
        maintaining.cancel()


def run_server(monkeypatch, tmp_path, capsys, *argv: str, **env: str) -> tuple[int, str, str]:
    import server

    for name in [n for n in os.environ if n.startswith("VHOD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VHOD_SERVER__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VHOD_STORAGE__URL", f"sqlite:///{tmp_path}/data/vhod.db")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    code = server.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_commands_list_rotate_and_import(monkeypatch, tmp_path, capsys):
    code, out, _ = run_server(monkeypatch, tmp_path, capsys, "keys", "list")
    assert code == 0 and out.split() == [
        "KID",
        "ALGORITHM",
        "STATE",
        "SIGNS",
        "FROM",
        "PUBLISHED",
        "UNTIL",
        "CREATED",
    ]
    code, out, _ = run_server(monkeypatch, tmp_path, capsys, "keys", "rotate")
    assert code == 0 and "a new key was added" in out
    first = out.splitlines()[2].split()
    assert first[1:3] == ["ES256", "current"]  # the first key signs at once
    code, out, _ = run_server(
        monkeypatch, tmp_path, capsys, "keys", "rotate", "--algorithm", "EdDSA"
    )
    assert code == 0 and out.splitlines()[-1].split()[1:3] == ["EdDSA", "next"]
    code, out, _ = run_server(monkeypatch, tmp_path, capsys, "keys", "rotate")
    assert code == 0 and "already waiting" in out  # one successor at a time
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(b"hunter2hunter2"),
        )
    )
    code, out, _ = run_server(
        monkeypatch,
        tmp_path,
        capsys,
        "keys",
        "import",
        str(pem),
        "--password-env",
        "PEM_PW",
        PEM_PW="hunter2hunter2",
    )
    assert code == 0 and "(RS256)" in out
    assert [line.split()[1] for line in out.splitlines()[2:]] == ["ES256", "EdDSA", "RS256"]
    assert "hunter2" not in out


def test_keys_commands_refuse_a_wrong_kek_and_a_bad_pem(monkeypatch, tmp_path, capsys):
    kek = {"VHOD_JWT__KEY_ENCRYPTION_KEY": "a" * 32}
    assert run_server(monkeypatch, tmp_path, capsys, "keys", "rotate", **kek)[0] == 0
    code, _, err = run_server(
        monkeypatch, tmp_path, capsys, "keys", "rotate", VHOD_JWT__KEY_ENCRYPTION_KEY="b" * 32
    )
    assert code == 2 and "jwt.key_encryption_key" in err and "Traceback" not in err
    (tmp_path / "bad.pem").write_text("not a key")
    code, _, err = run_server(monkeypatch, tmp_path, capsys, "keys", "import", "bad.pem", **kek)
    assert code == 2 and "PEM" in err
    code, out, _ = run_server(monkeypatch, tmp_path, capsys, "keys", "list", **kek)
    assert len(out.splitlines()) == 2  # still the one key


def test_processes_sharing_a_sqlite_file_share_its_generated_kek(io_loop, tmp_path):
    def start(name):
        config = make_config(
            tmp_path / name,
            **{
                "jwt.secret": None,
                "jwt.algorithm": "ES256",
                "storage.url": f"sqlite:///{tmp_path}/shared/vhod.db",
            },
        )
        return io_loop.run_sync(lambda: build_services(config))

    a = start("a")
    b = start("b")  # another data_dir, the same database: it decrypts a's key
    try:
        token = a.tokens.issue("access_token", "u1", "ann").token
        assert b.accounts.validate_access(token) is True
        assert (tmp_path / "shared" / KEK_FILE).exists()
        assert not (tmp_path / "a" / KEK_FILE).exists()
    finally:
        io_loop.run_sync(a.close)
        io_loop.run_sync(b.close)


async def test_a_key_from_an_instance_with_another_kek_still_verifies(store: Store, caplog):
    clock = FakeClock(T0)
    ours = manager(store, clock)
    await ours.start()
    theirs = manager(store, clock, kek=KeyEncryptionKey(b"t" * 32))
    await theirs.rotate_if_due(force=True)  # a misconfigured instance adds a key
    foreign = (await store.list_signing_keys())[-1]
    for _ in range(3):
        await ours.refresh()  # running: not a reason to stop serving
    key = ours.ring.verifier(foreign.kid, clock())
    assert key is not None and key.signing is None  # verifies its tokens, cannot sign
    clock.advance(POLICY.lead)
    assert ours.ring.signer(clock()).kid != foreign.kid  # keeps signing with its own key
    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and foreign.kid in r.getMessage()
    ]
    assert len(errors) == 1 and "jwt.key_encryption_key" in errors[0].getMessage()
