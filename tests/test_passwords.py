"""Password rules PW1–PW4 at the unit level: policy, bcrypt input, hashing pool."""

import asyncio
import logging
import threading

import bcrypt
import pytest
from argon2 import PasswordHasher

from core.domain.errors import ApiError
from core.domain.passwords import (
    BCRYPT_MAX_INPUT,
    MAX_SECRET_BYTES,
    Argon2Params,
    Hasher,
    bcrypt_input,
    check_password_policy,
    hash_cost,
    hash_parameters,
)

CHEAP = Argon2Params(memory_kib=64, iterations=1)


def test_policy_minimum_length_counts_characters():
    with pytest.raises(ApiError) as err:
        check_password_policy("a" * 7, 8)
    assert err.value.code == "weak_password"
    assert check_password_policy("a" * 8, 8) == b"a" * 8
    # 8 Cyrillic characters are 16 bytes but still 8 characters: accepted.
    assert check_password_policy("пароль12", 8)


def test_policy_caps_bytes_before_hashing():
    check_password_policy("a" * MAX_SECRET_BYTES, 8)
    with pytest.raises(ApiError) as err:
        check_password_policy("a" * (MAX_SECRET_BYTES + 1), 8)
    assert err.value.code == "weak_password"
    with pytest.raises(ApiError):
        check_password_policy("ж" * 513, 8)  # 1026 bytes


def test_short_secrets_go_to_bcrypt_as_they_are():
    assert bcrypt_input(b"a" * BCRYPT_MAX_INPUT) == b"a" * BCRYPT_MAX_INPUT


def test_long_secrets_are_prehashed_without_collisions():
    long_one = bcrypt_input(b"a" * 72 + b"1")
    long_two = bcrypt_input(b"a" * 72 + b"2")
    assert long_one != long_two
    assert len(long_one) <= BCRYPT_MAX_INPUT
    # The marker byte cannot occur in UTF-8, so no short secret maps to the same input.
    with pytest.raises(UnicodeDecodeError):
        long_one.decode("utf-8")


async def test_hash_and_verify_round_trip():
    hasher = Hasher("bcrypt", rounds=4, workers=1)
    try:
        first = await hasher.hash(b"correct horse")
        second = await hasher.hash(b"correct horse")
        assert first.startswith("$2b$04$") and first != second
        assert await hasher.verify(b"correct horse", first)
        assert not await hasher.verify(b"Correct horse", first)
        assert not await hasher.verify(b"correct horse", None)
        assert not await hasher.verify(b"x", "not-a-bcrypt-hash")
        assert not await hasher.verify(b"x", "$2b$04$\u00e9")
    finally:
        hasher.close()


async def test_over_72_bytes_verified_exactly():
    hasher = Hasher("bcrypt", rounds=4, workers=1)
    try:
        stored = await hasher.hash(b"a" * 72 + b"1")
        assert await hasher.verify(b"a" * 72 + b"1", stored)
        assert not await hasher.verify(b"a" * 72 + b"2", stored)
        assert not await hasher.verify(b"a" * 72, stored)
    finally:
        hasher.close()


async def test_argon2id_by_default_at_owasp_minimum():
    hasher = Hasher(workers=1)
    try:
        stored = await hasher.hash(b"correct horse")
        assert hash_parameters(stored) == "$argon2id$v=19$m=19456,t=2,p=1$"
        assert await hasher.verify(b"correct horse", stored)
        assert not hasher.needs_rehash(stored)
    finally:
        hasher.close()


async def test_argon2id_verifies_long_secrets_exactly_and_refuses_malformed_hashes():
    hasher = Hasher("argon2id", argon2=CHEAP, workers=1)
    try:
        stored = await hasher.hash(b"a" * 1000 + b"1")
        assert await hasher.verify(b"a" * 1000 + b"1", stored)
        assert not await hasher.verify(b"a" * 1000 + b"2", stored)
        assert not await hasher.verify(b"a" * 1000, stored)
        assert not await hasher.verify(b"x", "$argon2id$v=19$m=64,t=1,p=1$bm90$bm90")
        assert not await hasher.verify(b"x", "$argon2id$\u00e9")
        assert not await hasher.verify(b"x", "")
    finally:
        hasher.close()


async def test_either_algorithm_verifies_and_is_rehashed_to_the_configured_one():
    argon2 = Hasher("argon2id", argon2=CHEAP, workers=1)
    legacy = Hasher("bcrypt", rounds=4, workers=1)
    try:
        old = await legacy.hash(b"password")
        new = await argon2.hash(b"password")
        for hasher in (argon2, legacy):
            assert await hasher.verify(b"password", old)
            assert await hasher.verify(b"password", new)
        assert argon2.needs_rehash(old) and not argon2.needs_rehash(new)
        assert legacy.needs_rehash(new) and not legacy.needs_rehash(old)
    finally:
        argon2.close()
        legacy.close()


@pytest.mark.parametrize(
    "changed",
    [
        Argon2Params(memory_kib=128, iterations=1),
        Argon2Params(memory_kib=64, iterations=2),
        Argon2Params(memory_kib=64, iterations=1, parallelism=2),
        Argon2Params(memory_kib=32, iterations=1),  # lower too: the memory bound is the new one
    ],
)
async def test_other_argon2_parameters_need_rehash(changed):
    hasher = Hasher("argon2id", argon2=CHEAP, workers=1)
    try:
        stored = await hasher.hash(b"password")
        assert Hasher("argon2id", argon2=changed, workers=1).needs_rehash(stored)
        assert not hasher.needs_rehash(stored)
    finally:
        hasher.close()


async def test_the_dummy_hash_is_of_the_configured_algorithm_and_costs():
    for hasher, expected in (
        (Hasher("argon2id", argon2=CHEAP, workers=1), "$argon2id$v=19$m=64,t=1,p=1$"),
        (Hasher("bcrypt", rounds=5, workers=1), "$2b$05$"),
    ):
        try:
            await hasher.warm_up()
            assert hasher._dummy_hash is not None
            assert hash_parameters(hasher._dummy_hash) == expected
        finally:
            hasher.close()


async def test_configured_cost_is_used_and_lower_costs_need_rehash():
    hasher = Hasher("bcrypt", rounds=5, workers=1)
    try:
        stored = await hasher.hash(b"password")
        assert hash_cost(stored) == 5
        assert not hasher.needs_rehash(stored)
        assert Hasher("bcrypt", rounds=6, workers=1).needs_rehash(stored)
    finally:
        hasher.close()


async def test_full_queue_answers_overloaded_at_once():
    hasher = Hasher("bcrypt", rounds=10, workers=1, queue=1)
    try:
        running = [asyncio.ensure_future(hasher.hash(b"password")) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(ApiError) as err:
            await hasher.hash(b"password")
        assert (err.value.status, err.value.code) == (503, "overloaded")
        assert err.value.headers["Retry-After"].isdigit()
        await asyncio.gather(*running)
    finally:
        hasher.close()


@pytest.mark.parametrize("algorithm", ["argon2id", "bcrypt"])
async def test_hashing_does_not_block_the_event_loop(monkeypatch, caplog, algorithm):
    """While a hash runs, the loop runs too: the hash below finishes only after the loop has
    run a callback it scheduled, which a hash on the loop's own thread could never see; and
    asyncio's debug-mode detector finds no callback that held the loop."""
    loop = asyncio.get_running_loop()
    loop_ran = threading.Event()
    seen: dict[str, object] = {}

    def on_the_hash_thread() -> None:
        seen["thread"] = threading.get_ident()
        loop.call_soon_threadsafe(loop_ran.set)
        seen["loop_ran_meanwhile"] = loop_ran.wait(timeout=5)

    real_hashpw, real_argon2 = bcrypt.hashpw, PasswordHasher.hash

    def hashpw(secret: bytes, salt: bytes) -> bytes:
        on_the_hash_thread()
        return real_hashpw(secret, salt)

    def argon2_hash(self, secret, *, salt=None):
        on_the_hash_thread()
        return real_argon2(self, secret, salt=salt)

    monkeypatch.setattr(bcrypt, "hashpw", hashpw)
    monkeypatch.setattr(PasswordHasher, "hash", argon2_hash)
    caplog.set_level(logging.WARNING, logger="asyncio")
    hasher = Hasher(algorithm, rounds=12, workers=1)  # argon2id at OWASP's minimum
    debug, slow_after = loop.get_debug(), loop.slow_callback_duration
    loop.set_debug(True)
    loop.slow_callback_duration = 0.5  # a hash on the loop would hold it 5 s or more
    try:
        await hasher.hash(b"password")
    finally:
        loop.set_debug(debug)
        loop.slow_callback_duration = slow_after
        hasher.close()
    assert seen["loop_ran_meanwhile"] is True
    assert seen["thread"] != threading.get_ident()
    held = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert not [message for message in held if " took " in message], held


async def test_hash_workers_run_at_a_lower_priority_than_the_event_loop():
    import os
    import threading

    hasher = Hasher("bcrypt", rounds=4, workers=1)
    try:
        loop_niceness = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        worker = await asyncio.get_running_loop().run_in_executor(
            hasher._pool, lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        )
        assert worker > loop_niceness
    finally:
        hasher.close()


def test_calibrate_command_reports_one_hash_per_candidate(tmp_path):
    """`python server.py passwords calibrate` (the `vhod` command is the same main) times the
    configured hash and the candidates asked for; tiny ones here, so that it is quick."""
    import subprocess
    import sys

    from tests.processes import ROOT, clean_env

    config = tmp_path / "calibrate.yaml"
    config.write_text("passwords:\n  algorithm: bcrypt\n  bcrypt_rounds: 4\n")
    command = [sys.executable, str(ROOT / "server.py"), "--config", str(config)]
    command += ["passwords", "calibrate", "--samples", "1", "--argon2", "64,1,1", "--bcrypt", "5"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=clean_env())
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    configured = [row for row in rows if row[0] == "*"]
    assert configured == [["*", "bcrypt", "cost", "4", *configured[0][4:]]]
    argon2 = next(row for row in rows if row[0] == "argon2id")
    assert argon2[1:4] == ["m=64", "t=1", "p=1"]
    assert float(argon2[4]) > 0 and "refused:" in argon2  # under the floor: said so
    assert any(row[:3] == ["bcrypt", "cost", "5"] for row in rows)
    refused = subprocess.run(
        [*command[:-4], "--argon2", "lots"], capture_output=True, text=True, env=clean_env()
    )
    assert refused.returncode == 2 and "MEMORY_KIB,ITERATIONS,LANES" in refused.stderr
