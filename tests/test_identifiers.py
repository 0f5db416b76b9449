"""Email and phone normalisation: one stored spelling per mailbox and per number."""

import pytest

from core.domain.errors import ApiError
from core.domain.identifiers import normalize_email, normalize_phone


@pytest.mark.parametrize(
    "raw", ["Ann@Example.COM", " ann@example.com ", "ANN@EXAMPLE.com", "ann@example.com"]
)
def test_email_spellings_are_one_user(raw):
    assert normalize_email(raw) == "ann@example.com"


def test_email_domain_is_idna_encoded():
    assert normalize_email("Ivan@Пример.РФ") == "ivan@xn--e1afmkfd.xn--p1ai"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "no-at-sign",
        "a@",
        "@example.com",
        "a b@example.com",
        "x@localhost",
        "a@" + "x" * 400 + ".com",
    ],
)
def test_bad_emails_are_refused(raw):
    with pytest.raises(ApiError) as err:
        normalize_email(raw)
    assert (err.value.status, err.value.code) == (400, "invalid_email")


@pytest.mark.parametrize(
    "raw", ["8 (916) 123-45-67", "+7 916 123 45 67", "79161234567", "+79161234567", "9161234567"]
)
def test_phone_spellings_are_one_user(raw):
    assert normalize_phone(raw) == "+79161234567"


def test_phone_default_region_is_configurable():
    assert normalize_phone("(650) 253-0000", "US") == "+16502530000"
    assert normalize_phone("+44 20 7946 0958", "US") == "+442079460958"


@pytest.mark.parametrize(
    "raw,region",
    [
        ("", "RU"),
        ("12345", "RU"),
        ("abc", "RU"),
        ("+7 000", "RU"),
        ("8" * 70, "RU"),
        ("+0 123 456 7890", "RU"),
        ("30000000000000", "DE"),
    ],  # the last: 16 digits, not E.164
)
def test_bad_phones_are_refused(raw, region):
    with pytest.raises(ApiError) as err:
        normalize_phone(raw, region)
    assert (err.value.status, err.value.code) == (400, "invalid_phone_number")


@pytest.mark.parametrize("raw", ["Ann@Example.COM", "8 (916) 123-45-67"])
def test_normalisation_is_idempotent(raw):
    normalize = normalize_email if "@" in raw else normalize_phone
    once = normalize(raw)
    assert normalize(once) == once
