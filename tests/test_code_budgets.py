"""The SMS-pumping budgets as plain decisions (core.domain.code_budgets)."""

from __future__ import annotations

from core.domain.code_budgets import Budgets, counters, judge, number_prefix, region_allowed

BUDGETS = Budgets(
    per_address_per_hour=3,
    per_address_per_day=10,
    per_client_per_hour=10,
    per_prefix_per_hour=100,
    prefix_digits=3,
    captcha_share=0.5,
)
NOW = 1_000_000.0


def test_a_prefix_is_the_country_code_and_the_first_national_digits():
    assert number_prefix("+79161234567", 3) == "7-916"
    assert number_prefix("+77011234567", 4) == "7-7011"
    assert number_prefix("+12025550143", 3) == "1-202"


def test_phone_requests_count_the_prefix_and_keys_hold_no_number():
    keys = counters("phone", "+79161234567", "ip:203.0.113.7", BUDGETS)
    assert [window for _, window in keys] == [3600.0, 86_400.0, 3600.0, 3600.0]
    assert keys[3][0] == "codes:prefix:h:7-916"
    assert not any("9161234567" in key for key, _ in keys)
    assert len(counters("email", "ann@example.com", "ip:x", BUDGETS)) == 3


def test_the_first_budget_gone_past_is_named_with_its_wait():
    fine = [(1, NOW + 3600), (1, NOW + 86_400), (1, NOW + 3600), (1, NOW + 3600)]
    assert judge(fine, BUDGETS, NOW).over is None
    hour = [(4, NOW + 1200), (4, NOW + 86_400), (4, NOW + 3600), (4, NOW + 3600)]
    verdict = judge(hour, BUDGETS, NOW)
    assert (verdict.over, verdict.retry_after, verdict.first_over) == ("address_hour", 1200, True)
    again = [(5, NOW + 1200), *hour[1:]]
    assert not judge(again, BUDGETS, NOW).first_over
    prefix = [(1, NOW + 1), (1, NOW + 1), (1, NOW + 1), (101, NOW + 30)]
    assert judge(prefix, BUDGETS, NOW).over == "prefix_hour"


def test_captcha_is_due_past_the_share_of_the_client_or_the_prefix():
    def counts(client: int, prefix: int):
        return [(1, NOW + 1), (1, NOW + 1), (client, NOW + 1), (prefix, NOW + 1)]

    assert not judge(counts(5, 50), BUDGETS, NOW).captcha_due
    assert judge(counts(6, 1), BUDGETS, NOW).captcha_due
    assert judge(counts(1, 51), BUDGETS, NOW).captcha_due


def test_regions():
    assert region_allowed("+79161234567", ("RU",))
    assert region_allowed("+77011234567", ("RU", "KZ"))
    assert not region_allowed("+77011234567", ("RU",))
    assert not region_allowed("+12025550143", ("RU", "KZ"))
