"""Normalisation of the identifiers a user signs in with: email addresses and phone numbers."""

from __future__ import annotations

import email_validator
import phonenumbers

from core.domain.errors import ApiError, invalid_request

MAX_IDENTIFIER_LENGTH = 320  # RFC 5321's longest address; nothing longer is parsed at all
E164_MAX_DIGITS = 15


def normalize_email(value: str) -> str:
    """Trimmed, syntax-checked, IDNA domain, local part lower-cased: one spelling per mailbox."""
    candidate = value.strip()
    if not candidate or len(candidate) > MAX_IDENTIFIER_LENGTH:
        raise invalid_email()
    try:
        result = email_validator.validate_email(candidate, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise invalid_email() from exc
    domain = result.ascii_domain.lower()
    return f"{result.local_part.lower()}@{domain}"


def normalize_phone(value: str, default_region: str = "RU") -> str:
    """A valid number in E.164 (`+79161234567`), parsed with `default_region` for local forms."""
    candidate = value.strip()
    if not candidate or len(candidate) > 64:
        raise invalid_phone()
    try:
        number = phonenumbers.parse(candidate, default_region)
    except phonenumbers.NumberParseException as exc:
        # "79161234567" without "+" or a trunk prefix: try it as an international number.
        international = _parse_international(candidate)
        if international is None:
            raise invalid_phone() from exc
        number = international
    if not phonenumbers.is_valid_number(number):
        retry = _parse_international(candidate)
        if retry is None or not phonenumbers.is_valid_number(retry):
            raise invalid_phone()
        number = retry
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if len(e164) - 1 > E164_MAX_DIGITS:  # libphonenumber accepts a few longer ones
        raise invalid_phone()
    return e164


def _parse_international(candidate: str) -> phonenumbers.PhoneNumber | None:
    if candidate.startswith("+"):
        return None
    try:
        return phonenumbers.parse("+" + candidate, None)
    except phonenumbers.NumberParseException:
        return None


def one_identifier(email: str | None, phone: str | None, default_region: str) -> tuple[str, str]:
    """("email" | "phone", the normal form) of the one identifier given; 400 for both,
    neither, or one that is not valid."""
    if (email is None) == (phone is None):
        raise invalid_request("Send either 'email' or 'phone_number'.")
    if email is not None:
        return "email", normalize_email(email)
    assert phone is not None
    return "phone", normalize_phone(phone, default_region)


def is_valid_region(region: str) -> bool:
    return region.upper() in phonenumbers.SUPPORTED_REGIONS


def invalid_email() -> ApiError:
    return ApiError(400, "invalid_email", "The email address is not valid.")


def invalid_phone() -> ApiError:
    return ApiError(400, "invalid_phone_number", "The phone number is not valid.")
