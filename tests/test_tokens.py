"""Token rules JW1–JW5 at the unit level, against PyJWT-made forgeries."""

import base64
import json
import os
import stat

import jwt
import pytest

from core.infra.clock import FakeClock
from core.signing.keys import Key, KeyRing, generate_private_key, public_jwk
from core.signing.tokens import (
    ACCESS,
    REFRESH,
    InvalidToken,
    TokenService,
    load_or_create_secret,
    parse,
)

SECRET = b"k" * 32


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def tokens(clock):
    return TokenService(SECRET, clock=clock)


def forge(claims, key=SECRET, algorithm="HS256", headers=None):
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def claims_of(tokens, **changes):
    issued = tokens.issue(ACCESS, "u1", "ann@example.com")
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_issued_claims(tokens, clock):
    issued = tokens.issue(ACCESS, "u1", "ann@example.com")
    claims = tokens.decode(issued.token, ACCESS)
    assert claims["sub"] == "u1"
    assert claims["mode"] == "access_token"
    assert claims["iss"] == "vhod"
    assert claims["user_name"] == "ann@example.com"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["jti"] == issued.jti
    refresh = tokens.decode(tokens.issue(REFRESH, "u1", "x").token, REFRESH)
    assert refresh["mode"] == "refresh_token"
    assert refresh["exp"] - refresh["iat"] == 2_592_000


def test_modes_never_interchange(tokens):
    with pytest.raises(InvalidToken):
        tokens.decode(tokens.issue(REFRESH, "u1", "x").token, ACCESS)
    with pytest.raises(InvalidToken):
        tokens.decode(tokens.issue(ACCESS, "u1", "x").token, REFRESH)


@pytest.mark.parametrize("alg_name", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_case_is_refused(tokens, alg_name):
    header = base64.urlsafe_b64encode(json.dumps({"alg": alg_name, "typ": "JWT"}).encode())
    payload = base64.urlsafe_b64encode(json.dumps(claims_of(tokens)).encode())
    token = header.rstrip(b"=").decode() + "." + payload.rstrip(b"=").decode() + "."
    with pytest.raises(InvalidToken):
        tokens.decode(token, ACCESS)


def test_other_hmac_algorithm_with_the_real_key_is_refused(tokens):
    with pytest.raises(InvalidToken):
        tokens.decode(forge(claims_of(tokens), algorithm="HS512"), ACCESS)


def test_embedded_key_headers_are_ignored(tokens):
    attacker_key = b"a" * 32
    token = forge(
        claims_of(tokens),
        key=attacker_key,
        headers={
            "jwk": {"kty": "oct", "k": base64.urlsafe_b64encode(attacker_key).decode()},
            "jku": "https://evil.example/keys",
        },
    )
    with pytest.raises(InvalidToken):
        tokens.decode(token, ACCESS)


def test_any_flipped_bit_is_refused(tokens):
    token = tokens.issue(ACCESS, "u1", "x").token
    for index in range(0, len(token), 7):
        char = token[index]
        if char == ".":
            continue
        flipped = token[:index] + ("A" if char != "A" else "B") + token[index + 1 :]
        with pytest.raises(InvalidToken):
            tokens.decode(flipped, ACCESS)


def test_exp_is_required(tokens):
    with pytest.raises(InvalidToken):
        tokens.decode(forge(claims_of(tokens, exp=None)), ACCESS)


def test_expiry_with_small_leeway(tokens, clock):
    token = tokens.issue(ACCESS, "u1", "x").token
    clock.advance(900 + 5)
    tokens.decode(token, ACCESS)  # within the leeway
    clock.advance(56)  # exp 61 s ago
    with pytest.raises(InvalidToken):
        tokens.decode(token, ACCESS)


def test_wrong_issuer_is_refused(tokens):
    with pytest.raises(InvalidToken):
        tokens.decode(forge(claims_of(tokens, iss="someone-else")), ACCESS)


@pytest.mark.parametrize(
    "junk", ["", "abc", "a.b.c", "...", "e30.e30.", "x" * 100_000, "eyJhbGciOiJIUzI1NiJ9.e30.AA"]
)
def test_malformed_input_is_invalid_not_a_crash(tokens, junk):
    with pytest.raises(InvalidToken):
        tokens.decode(junk, ACCESS)


def test_non_string_subject_is_refused(tokens):
    with pytest.raises(InvalidToken):
        tokens.decode(forge(claims_of(tokens, sub=12)), ACCESS)


def test_short_or_unknown_configuration_is_refused():
    with pytest.raises(ValueError, match="32 bytes"):
        TokenService(b"short")
    with pytest.raises(ValueError, match="algorithm"):
        TokenService(SECRET, algorithm="none")


def test_generated_secret_is_kept_owner_only(tmp_path):
    first = load_or_create_secret(tmp_path)
    assert len(first) >= 32
    assert load_or_create_secret(tmp_path) == first
    mode = stat.S_IMODE(os.stat(tmp_path / "jwt_secret").st_mode)
    assert mode == 0o600
    assert load_or_create_secret(tmp_path / "other") != first


def test_verified_cache_still_checks_expiry_and_kind(tokens, clock):
    token = tokens.issue(ACCESS, "u1", "x").token
    tokens.decode(token, ACCESS)
    tokens.decode(token, ACCESS)  # from the cache
    with pytest.raises(InvalidToken):
        tokens.decode(token, REFRESH)
    clock.advance(900 + 61)
    with pytest.raises(InvalidToken):
        tokens.decode(token, ACCESS)


def test_verified_cache_is_bounded_and_holds_only_valid_tokens(tokens, monkeypatch):
    import core.signing.tokens as module

    monkeypatch.setattr(module, "VERIFIED_CACHE_SIZE", 8)
    for _ in range(20):
        tokens.decode(tokens.issue(ACCESS, "u1", "x").token, ACCESS)
        with pytest.raises(InvalidToken):
            tokens.decode("junk.junk.junk", ACCESS)
    assert len(tokens._verified) == 8
    assert "junk.junk.junk" not in tokens._verified


def test_cached_claims_cannot_be_changed_by_a_caller(tokens):
    token = tokens.issue(ACCESS, "u1", "x").token
    tokens.decode(token, ACCESS)["mode"] = REFRESH
    assert tokens.decode(token, ACCESS)["mode"] == ACCESS


def _read_secret_in_a_child(folder, start, results):
    start.wait()
    try:
        results.put(load_or_create_secret(folder))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(repr(exc))


def test_d9_processes_starting_at_once_share_one_whole_secret(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for trial in range(15):
        folder = tmp_path / f"trial-{trial}"
        start, results = context.Event(), context.Queue()
        children = [
            context.Process(target=_read_secret_in_a_child, args=(folder, start, results))
            for _ in range(6)
        ]
        for child in children:
            child.start()
        start.set()
        values = [results.get(timeout=30) for _ in children]
        for child in children:
            child.join(timeout=30)
        assert len(set(values)) == 1, values
        assert isinstance(values[0], bytes) and len(values[0]) >= 32, values
        assert [p.name for p in folder.iterdir()] == ["jwt_secret"]  # no temporary left


@pytest.mark.parametrize("content", [b"", b"\n", b"too-short"])
def test_d9_an_empty_or_short_secret_file_is_a_clean_error_naming_it(tmp_path, content):
    from core.signing.secret_file import SecretFileError

    (tmp_path / "jwt_secret").write_bytes(content)
    with pytest.raises(SecretFileError, match="jwt_secret"):
        load_or_create_secret(tmp_path)
    assert (tmp_path / "jwt_secret").read_bytes() == content  # never overwritten


def test_d9_the_server_refuses_a_bad_secret_file_without_a_traceback(tmp_path, monkeypatch, capsys):
    import server

    (tmp_path / "jwt_secret").write_bytes(b"")
    for name in [n for n in os.environ if n.startswith("VHOD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VHOD_SERVER__DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VHOD_STORAGE__URL", f"sqlite:///{tmp_path}/vhod.db")
    monkeypatch.setenv("VHOD_JWT__ALGORITHM", "HS256")
    monkeypatch.chdir(tmp_path)
    assert server.main([]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and str(tmp_path / "jwt_secret") in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": float("nan")},
        {"exp": float("inf")},
        {"exp": 9e99},
        {"exp": True},
        {"exp": "9999999999"},
        {"iat": float("nan")},
        {"iat": float("-inf")},
        {"iat": 1.5},
    ],
    ids=[
        "exp-nan",
        "exp-inf",
        "exp-float",
        "exp-bool",
        "exp-text",
        "iat-nan",
        "iat-inf",
        "iat-float",
    ],
)
def test_d21_exp_and_iat_must_be_finite_integers(tokens, changes):
    with pytest.raises(InvalidToken):
        tokens.decode(forge(claims_of(tokens, **changes)), ACCESS)


def test_d21_a_token_issued_in_the_future_is_refused(tokens, clock):
    future = claims_of(tokens, iat=int(clock()) + 60)
    with pytest.raises(InvalidToken):
        tokens.decode(forge(future), ACCESS)
    within_leeway = claims_of(tokens, iat=int(clock()) + 5)
    tokens.decode(forge(within_leeway), ACCESS)


def test_d21_a_nan_exp_token_is_not_accepted_later_from_the_cache(tokens, clock):
    token = forge(claims_of(tokens, exp=float("nan")))
    for _ in range(3):
        with pytest.raises(InvalidToken):
            tokens.decode(token, ACCESS)
        clock.advance(10**6)


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "HS256", "kid": 5},
        {"alg": "HS256", "kid": ["a"]},
        {"alg": ["HS256"]},
        {"alg": "HS256", "crit": ["exp"]},
        {"alg": "HS256", "kid": "A" * 5000},
        {"alg": "HS256", "x5u": "https://evil.test/cert"},
    ],
    ids=["kid-int", "kid-list", "alg-list", "crit", "kid-huge", "x5u"],
)
def test_odd_headers_are_refused_cleanly(tokens, header):
    _, payload, signature = tokens.issue(ACCESS, "u1", "x").token.split(".")
    head = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken):
        tokens.decode(f"{head}.{payload}.{signature}", ACCESS)


@pytest.mark.parametrize(
    "make_head",
    [
        lambda head: head + "=",  # padding: compact JWS segments are unpadded
        lambda head: head[:-1] + "!",  # outside the base64url alphabet
        lambda head: head.replace("-", "+").replace("_", "/") + "+/",  # plain base64
        lambda head: "",  # no header at all
        lambda head: base64.urlsafe_b64encode(b'["HS256"]').rstrip(b"=").decode(),  # not an object
        lambda head: base64.urlsafe_b64encode(b"\xff\xfe{").rstrip(b"=").decode(),  # not JSON
        lambda head: "A" * 9000,  # over MAX_TOKEN_CHARS before anything is decoded
    ],
    ids=["padded", "alphabet", "base64", "empty", "array", "not-json", "huge"],
)
def test_a_malformed_header_segment_is_refused_before_any_key_is_chosen(tokens, make_head):
    head, payload, signature = tokens.issue(ACCESS, "u1", "x").token.split(".")
    with pytest.raises(InvalidToken):
        tokens.decode(f"{make_head(head)}.{payload}.{signature}", ACCESS)
    with pytest.raises(InvalidToken):
        parse(f"{make_head(head)}.{payload}.{signature}")
    assert parse(f"{head}.{payload}.{signature}")[0] == jwt.get_unverified_header(
        f"{head}.{payload}.{signature}"
    )


def test_hmac_tokens_carry_a_kid_and_a_typ_per_kind(tokens):
    access = jwt.get_unverified_header(tokens.issue(ACCESS, "u1", "x").token)
    refresh = jwt.get_unverified_header(tokens.issue(REFRESH, "u1", "x").token)
    assert access == {"alg": "HS256", "typ": "JWT", "kid": access["kid"]}
    # Refresh tokens: a key of their own, derived from the secret and never shared.
    assert refresh["typ"] == "refresh+jwt" and refresh["kid"].startswith("rt-")
    assert access["kid"].startswith("hs-") and SECRET.decode() not in access["kid"]
    # Tokens signed before kids existed are the secret's too.
    legacy = forge(claims_of(tokens))
    assert "kid" not in jwt.get_unverified_header(legacy)
    assert tokens.decode(legacy, ACCESS)["sub"] == "u1"


def test_a_full_verified_cache_keeps_few_objects_per_token(tokens, monkeypatch):
    # Issue 21 (memory grew on MongoDB): each entry held the token's claims dict, some fifty
    # small objects; sixteen thousand of them, replaced oldest first, fragmented Python's
    # allocator. An entry now is the token string and a small tuple.
    import gc
    import sys

    import core.signing.tokens as module

    size = 2000
    monkeypatch.setattr(module, "VERIFIED_CACHE_SIZE", size)
    issued = [
        tokens.issue(ACCESS, f"user-{n}", f"user{n}@example.com", session=f"s{n}").token
        for n in range(2 * size)
    ]
    for token in issued[:size]:  # a full cache
        tokens.decode(token, ACCESS)
    gc.collect()
    full = sys.getallocatedblocks()
    for token in issued[size:]:  # every entry replaced: the cache stays full
        tokens.decode(token, ACCESS)
    assert len(tokens._verified) == size
    del issued[:size]  # the replaced tokens' strings, held by this test only
    gc.collect()
    # No growth per replaced token: what `full` counted, less the replaced tokens' strings.
    assert sys.getallocatedblocks() - (full - size) < size // 4
    tokens._verified.clear()
    gc.collect()
    held = (full - sys.getallocatedblocks()) / size
    # Four per entry (the token, its tuple, the exp int, the session id); a claims dict was
    # about fifty. The margin is for what else the process allocates meanwhile (CI once
    # measured a hair over 4.0).
    assert held < 4.5, f"{held:.3f} blocks per cached token"


def test_a_refresh_reads_sub_and_jti_from_the_cache_and_access_entries_keep_none(tokens):
    import core.signing.tokens as module

    issued = tokens.issue(REFRESH, "user-1", "ann@example.com")
    assert tokens.subject_and_id(issued.token, REFRESH) == ("user-1", issued.jti)  # verified
    # The second time from the cache entry: no payload is parsed.
    real = module.verified_payload
    module.verified_payload = None  # type: ignore[assignment]
    try:
        assert tokens.subject_and_id(issued.token, REFRESH) == ("user-1", issued.jti)
    finally:
        module.verified_payload = real
    with pytest.raises(InvalidToken):
        tokens.subject_and_id(issued.token, ACCESS)
    access = tokens.issue(ACCESS, "user-1", "ann@example.com", session="s1").token
    tokens.check(access, ACCESS)
    assert tokens._verified[access][4:] == (None, None)  # access entries stay small


def es256_service(clock, *keys):
    ring = KeyRing(algorithm="ES256")
    ring.load(list(keys))
    return TokenService(algorithm="ES256", keys=ring, clock=clock)


def es256_key(kid="es256-key-0001", private=None, **fields):
    private = private or generate_private_key("ES256")
    public = private.public_key()
    return Key(kid, "ES256", public, private, public_jwk("ES256", public, kid), **fields)


def flip(token, index):
    """The token with one base64url character of its signature changed."""
    head, payload, signature = token.split(".")
    chars = list(signature)
    chars[index] = "B" if chars[index] != "B" else "C"
    return f"{head}.{payload}.{''.join(chars)}"


@pytest.mark.parametrize("algorithm", ["ES256", "HS256"])
def test_a_cache_miss_verifies_the_signature_even_when_the_claims_match_a_cached_token(
    clock, algorithm
):
    tokens = es256_service(clock, es256_key()) if algorithm == "ES256" else TokenService(SECRET)
    token = tokens.issue(ACCESS, "u1", "x", session="s1").token
    assert tokens.check(token, ACCESS) == ("s1", None)  # verified, and now cached
    for index in (0, 10, -2):
        forged = flip(token, index)  # the same header and claims, a signature changed
        with pytest.raises(InvalidToken):
            tokens.check(forged, ACCESS)
        assert forged not in tokens._verified
    # A second spelling of the same signature (the unused bits of its last character set)
    # is another token string: refused, as PyJWT refuses it.
    head, payload, signature = token.split(".")
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(signature[-1])
    respelled = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last | 1]
    with pytest.raises(InvalidToken):
        tokens.check(f"{head}.{payload}.{signature[:-1]}{respelled}", ACCESS)
    assert tokens.check(token, ACCESS) == ("s1", None)


def test_prepared_keys_are_kept_per_kid_and_a_retired_or_replaced_key_is_not_used(clock):
    first = es256_key("es256-key-0001")
    tokens = es256_service(clock, first)
    one, two, three = (tokens.issue(ACCESS, "u1", "x").token for _ in range(3))
    tokens.check(one, ACCESS)
    assert set(tokens._prepared) == {"es256-key-0001"}
    # The same kid now names other key material: the key prepared for the old one is not
    # used, so the old key's tokens no longer verify.
    tokens.keys.load([es256_key("es256-key-0001")])
    with pytest.raises(InvalidToken):
        tokens.check(two, ACCESS)
    # The first key again, retired past its retention: its tokens are refused.
    tokens.keys.load([es256_key("es256-key-0001", first.signing, published_until=clock() - 1)])
    with pytest.raises(InvalidToken):
        tokens.check(three, ACCESS)
    # Published again: it verifies, with the key object the ring holds now.
    tokens.keys.load([es256_key("es256-key-0001", first.signing)])
    assert tokens.check(three, ACCESS) == (None, None)
    current = tokens.keys.verifier("es256-key-0001", clock())
    assert tokens._prepared["es256-key-0001"][0] is current


def test_the_verified_cache_stays_bounded_over_100k_distinct_tokens(tokens, clock):
    import core.signing.tokens as module

    issued = [tokens.issue(ACCESS, "u1", "x", session=f"s{n}").token for n in range(100_000)]
    for token in issued:
        tokens.check(token, ACCESS)
        assert len(tokens._verified) <= module.VERIFIED_CACHE_SIZE
    assert len(tokens._verified) == len(tokens._order) == module.VERIFIED_CACHE_SIZE
    # Oldest out first: the last VERIFIED_CACHE_SIZE tokens are the ones kept.
    assert set(tokens._verified) == set(issued[-module.VERIFIED_CACHE_SIZE :])
