"""How many sign-in codes may go where: the budgets against SMS pumping, as plain decisions.

Pumping bots ask for codes to premium numbers, walking a number prefix from many client
addresses, so a code is counted against the number (per hour and per day), the client
address (IPv6 per /64, like every client limit), the number's prefix (the first digits
after the country code) and, for text messages, the whole server's day. The counters live
in the store, so every instance shares them; this module only names them and reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import phonenumbers

from core.domain.events import identifier_hash

HOUR, DAY = 3600.0, 86_400.0
GLOBAL_KEY = "codes:all:day"


@dataclass(frozen=True)
class Budgets:
    per_address_per_hour: int = 3
    per_address_per_day: int = 10
    per_client_per_hour: int = 10
    per_prefix_per_hour: int = 100
    prefix_digits: int = 3  # digits after the country code that make a prefix
    daily_limit: int | None = None  # text messages a day, the whole server; None: no cap
    captcha_share: float = 0.5  # captcha "auto": asked once a client or prefix used this


def number_prefix(e164: str, digits: int) -> str:
    """+7 916 123-45-67 → "7-916" for 3 digits: the country code and the next digits."""
    number = phonenumbers.parse(e164)
    national = phonenumbers.national_significant_number(number)
    return f"{number.country_code}-{national[:digits]}"


@dataclass(frozen=True)
class Counted:
    """What one request counted; `over` is the first budget it went past, if any."""

    over: str | None
    retry_after: float
    captcha_due: bool
    first_over: bool = False  # this request is the first past `over`: say so once


def counters(channel: str, address: str, client: str, budgets: Budgets) -> list[tuple[str, float]]:
    """The (key, window) pairs one request counts, in the order `judge` reads them.

    Keys hold a keyed hash of the address, never the address: a copy of the store lists
    no phone numbers through its counters."""
    target = identifier_hash(address)
    keys = [
        (f"codes:to:h:{target}", HOUR),
        (f"codes:to:d:{target}", DAY),
        (f"codes:from:h:{client}", HOUR),
    ]
    if channel == "phone":
        keys.append((f"codes:prefix:h:{number_prefix(address, budgets.prefix_digits)}", HOUR))
    return keys


def judge(counts: Sequence[tuple[int, float]], budgets: Budgets, now: float) -> Counted:
    """Read the counts `counters` asked for: the first budget gone past, and whether a
    CAPTCHA is due under "auto" (the client or the prefix used its share)."""
    limits = [
        ("address_hour", budgets.per_address_per_hour),
        ("address_day", budgets.per_address_per_day),
        ("client_hour", budgets.per_client_per_hour),
        ("prefix_hour", budgets.per_prefix_per_hour),
    ]
    over, retry_after, first_over = None, 0.0, False
    for (name, limit), (hits, ends) in zip(limits, counts, strict=False):
        if hits > limit:
            over, retry_after, first_over = name, max(1.0, ends - now), hits == limit + 1
            break
    shared = [(budgets.per_client_per_hour, counts[2][0])]
    if len(counts) > 3:
        shared.append((budgets.per_prefix_per_hour, counts[3][0]))
    captcha_due = any(hits > limit * budgets.captcha_share for limit, hits in shared)
    return Counted(over, retry_after, captcha_due, first_over)


def region_allowed(e164: str, allowed: Sequence[str]) -> bool:
    """Whether the number belongs to one of the ISO regions in `allowed`."""
    region = phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    return region in allowed
