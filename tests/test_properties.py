"""Properties: normalisation is idempotent, a token is tamper-evident, the PKCE relation holds."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import string

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.domain.errors import ApiError
from core.domain.identifiers import normalize_email, normalize_phone
from core.domain.pkce import code_challenge, new_code_verifier
from core.signing.tokens import ACCESS, REFRESH, InvalidToken, TokenService
from tests.conftest import TEST_SECRET

# No example database: nothing is written into the work tree, and every run starts clean.
PROPERTY = settings(max_examples=300, deadline=None, database=None)
# Any text a JSON body can carry, lone surrogates ("\ud800") included.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=80)

# ---- email ------------------------------------------------------------------------------

ATOM = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
LABEL = string.ascii_letters + string.digits


@st.composite
def emails(draw: st.DrawFn) -> str:
    """Addresses email_validator must accept: dot-atom local parts, ASCII or Cyrillic domains,
    in any letter case and with blanks around."""
    local = ".".join(draw(st.lists(st.text(ATOM, min_size=1, max_size=12), min_size=1, max_size=3)))
    label = st.text(LABEL, min_size=1, max_size=12)
    cyrillic = st.text("абвгдежзийклмнопрстуфхцчшщэюя", min_size=2, max_size=10)
    names = draw(st.lists(st.one_of(label, cyrillic), min_size=1, max_size=3))
    tld = draw(st.sampled_from(["com", "ru", "org", "io", "рф", "ДЕТИ"]))
    address = f"{local}@{'.'.join([*names, tld])}"
    address = "".join(c.upper() if draw(st.booleans()) else c for c in address)
    return draw(st.sampled_from(["", " ", "\t"])) + address + draw(st.sampled_from(["", " ", "\n"]))


@PROPERTY
@given(emails())
@example("  Ann@Example.COM ")
@example("ann@ПРИМЕР.рф")
def test_a_valid_email_normalises_to_one_fixed_spelling(address):
    normal = normalize_email(address)
    assert normal == normal.lower() == normal.strip()
    assert normal.isascii()  # the domain in its IDNA form
    assert normalize_email(normal) == normal
    # Case and blanks never make a second user.
    assert normalize_email(address.strip().swapcase()) == normal


@PROPERTY
@given(ANY_TEXT | st.from_regex(r"\s*[^@\s]{1,20}@[^@\s]{1,20}\s*", fullmatch=True))
def test_any_text_is_refused_or_normalises_to_a_fixed_point_email(text):
    try:
        normal = normalize_email(text)
    except ApiError as error:
        assert (error.status, error.code) == (400, "invalid_email")
        return
    assert normalize_email(normal) == normal


# ---- phone numbers ------------------------------------------------------------------------

FORMATS = (
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.NATIONAL,
    phonenumbers.PhoneNumberFormat.RFC3966,
)


def example_numbers() -> list[tuple[str, phonenumbers.PhoneNumber]]:
    """The library's own valid example numbers, a mobile and a fixed one for every region.
    Made on the first draw: reading every region's metadata takes half a second, which each
    test worker would otherwise pay at collection."""
    return [
        (region, number)
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
        if (number := phonenumbers.example_number_for_type(region, kind)) is not None
        and phonenumbers.is_valid_number(number)
    ]


@PROPERTY
@given(st.deferred(lambda: st.sampled_from(example_numbers())), st.sampled_from(FORMATS))
def test_a_valid_number_in_any_format_normalises_to_its_e164(example_number, number_format):
    region, number = example_number
    written = phonenumbers.format_number(number, number_format)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # A national spelling is read with its own region as the default, as a local operator would.
    assert normalize_phone(written, region) == e164
    assert normalize_phone(e164, "RU") == e164
    assert normalize_phone(e164, region) == e164


@PROPERTY
@given(
    st.text(alphabet="0123456789 +()-.", max_size=24) | ANY_TEXT,
    st.sampled_from(["RU", "US", "GB", "DE", "KZ", "BY"]),
)
@example("8 (916) 123-45-67", "RU")
@example("79161234567", "US")
@example("30000000000000", "DE")
def test_any_text_is_refused_or_normalises_to_a_fixed_point_phone(text, region):
    try:
        normal = normalize_phone(text, region)
    except ApiError as error:
        assert (error.status, error.code) == (400, "invalid_phone_number")
        return
    # E.164: at most 15 digits, though libphonenumber takes some longer numbers as valid
    # ("30000000000000" in DE); those are refused.
    assert re.fullmatch(r"\+[1-9][0-9]{1,14}", normal)
    assert normalize_phone(normal, region) == normal
    assert normalize_phone(normal, "RU") == normal


# ---- tokens -------------------------------------------------------------------------------

TOKENS = TokenService(TEST_SECRET.encode())


def b64url_decode(segment: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None


@PROPERTY
@given(st.sampled_from([ACCESS, REFRESH]), st.data())
def test_any_one_byte_change_makes_a_token_invalid(mode, data):
    token = TOKENS.issue(mode, "user-1", "ann@example.com").token
    assert TOKENS.decode(token, mode)["sub"] == "user-1"
    position = data.draw(st.integers(0, len(token) - 1), label="position")
    # Any other ASCII character: one byte of the token replaced by another.
    replacement = data.draw(
        st.characters(codec="ascii").filter(lambda c: c != token[position]), label="replacement"
    )
    tampered = token[:position] + replacement + token[position + 1 :]
    # No exception for the signature's last character: see the test below.
    with pytest.raises(InvalidToken):
        TOKENS.decode(tampered, mode)


def test_a_change_in_the_unused_bits_of_the_signature_is_refused_too():
    """The HS256 signature is 32 bytes in 43 base64url characters, so its last character
    carries 2 bits that decode to nothing: a change in only those bits leaves the decoded
    signature as it was. Such a token is still refused because PyJWT accepts only the
    canonical encoding of each segment; this pins that, so the property above holds for
    every position without an exception."""
    token = TOKENS.issue(ACCESS, "user-1", "ann@example.com").token
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    body, signature = token.rsplit(".", 1)
    twin = signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 0b01]
    assert b64url_decode(twin) == b64url_decode(signature)
    with pytest.raises(InvalidToken):
        TOKENS.decode(f"{body}.{twin}", ACCESS)


# ---- PKCE (RFC 7636) ------------------------------------------------------------------------

VERIFIER_ALPHABET = string.ascii_letters + string.digits + "-._~"


@PROPERTY
@given(st.text(VERIFIER_ALPHABET, min_size=43, max_size=128))
@example("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")  # RFC 7636 appendix B
def test_the_challenge_is_the_unpadded_base64url_sha256_of_the_verifier(verifier):
    challenge = code_challenge(verifier)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", challenge)
    assert base64.urlsafe_b64decode(challenge + "=") == hashlib.sha256(verifier.encode()).digest()


def test_rfc_7636_appendix_b():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_new_verifiers_are_distinct_and_in_the_alphabet():
    verifiers = [new_code_verifier() for _ in range(2000)]
    assert len(set(verifiers)) == len(verifiers)
    for verifier in verifiers:
        assert 43 <= len(verifier) <= 128
        assert set(verifier) <= set(VERIFIER_ALPHABET)
