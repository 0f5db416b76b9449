"""core.infra.net: trusted proxies, X-Forwarded-For, and the per-address limit's keys (LG4)."""

from __future__ import annotations

import ipaddress

import pytest

from core.infra.net import address_key, client_ip, normal_origin, parse_address, parse_networks

PROXIES = parse_networks(["10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.1"])
REGISTER = "/authorization/registration"


def test_trusted_proxies_are_addresses_or_ranges():
    networks = parse_networks([" 10.0.0.0/8", "192.0.2.1", "2001:db8::/32", "10.1.2.3/8"])
    assert [str(n) for n in networks] == [
        "10.0.0.0/8",
        "192.0.2.1/32",
        "2001:db8::/32",
        "10.0.0.0/8",
    ]
    assert parse_networks([]) == ()


@pytest.mark.parametrize("entry", ["", "proxy.example", "10.0.0.0/33", "10.0.0.1,10.0.0.2", "::g"])
def test_a_bad_trusted_proxy_entry_is_named(entry):
    with pytest.raises(ValueError, match=r"server\.trusted_proxies: .* is not an address or range"):
        parse_networks(["10.0.0.1", entry])


@pytest.mark.parametrize(
    "text,expected",
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:5678", "203.0.113.7"),
        ("2001:DB8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("[::ffff:203.0.113.7]:80", "203.0.113.7"),
    ],
)
def test_addresses_as_proxies_write_them(text, expected):
    assert str(parse_address(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "unknown",
        "203.0.113",
        "203.0.113.7:",
        "203.0.113.7:http",
        "203.0.113.7:123456",
        "203.0.113.07",
        "[2001:db8::1",
        "[2001:db8::1]443",
        "[203.0.113.7]x",
        "2001:db8::1::2",
        "1.2.3.4 5.6.7.8",
        "١٢٣.٠.١١٣.٧",
        "203.0.113.7:٨٠",
        "x" * 5000,
    ],
)
def test_garbled_addresses_are_none(text):
    assert parse_address(text) is None


def test_the_peer_is_the_client_unless_it_is_a_trusted_proxy():
    assert client_ip("203.0.113.7", "6.6.6.6", PROXIES) == "203.0.113.7"
    assert client_ip("10.0.0.5", None, PROXIES) == "10.0.0.5"
    assert client_ip("10.0.0.5", "", PROXIES) == "10.0.0.5"
    assert client_ip("10.0.0.5", "203.0.113.7", ()) == "10.0.0.5"


def test_forwarded_for_is_walked_from_the_right_past_trusted_hops():
    # The client wrote "6.6.6.6" itself; the proxies appended the rest.
    header = "6.6.6.6, 203.0.113.7, 10.1.1.1, 2001:db8:ffff::2"
    assert client_ip("10.0.0.5", header, PROXIES) == "203.0.113.7"
    assert client_ip("10.0.0.5", "203.0.113.7:5678,10.1.1.1", PROXIES) == "203.0.113.7"
    assert client_ip("10.0.0.5", "[2001:db8:1::7]:443", PROXIES) == "2001:db8:1::7"
    assert client_ip("2001:db8:ffff::9", "2001:DB8:1::7", PROXIES) == "2001:db8:1::7"


def test_ipv4_mapped_peers_and_hops_match_ipv4_ranges():
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
    assert client_ip("::ffff:10.0.0.5", "203.0.113.7", PROXIES) == "203.0.113.7"
    assert client_ip("10.0.0.5", "203.0.113.7, ::ffff:10.9.9.9", PROXIES) == "203.0.113.7"
    assert client_ip("10.0.0.5", "::ffff:203.0.113.7", PROXIES) == "203.0.113.7"


def test_every_hop_trusted_gives_the_leftmost():
    assert client_ip("10.0.0.5", "10.2.2.2, 10.1.1.1", PROXIES) == "10.2.2.2"
    assert client_ip("10.0.0.5", " , ,", PROXIES) == "10.0.0.5"


@pytest.mark.parametrize(
    "header",
    ["garbage", "203.0.113.7, garbage", "203.0.113.7, 10.1.1.1, nope", "203.0.113.7;10.1.1.1"],
)
def test_a_garbled_hop_falls_back_to_the_proxy(header):
    assert client_ip("10.0.0.5", header, PROXIES) == "10.0.0.5"


def test_a_garbled_hop_left_of_the_client_is_never_read():
    assert client_ip("10.0.0.5", "garbage, 203.0.113.7", PROXIES) == "203.0.113.7"


def test_ipv4_counts_per_address_and_ipv6_per_network():
    assert address_key("203.0.113.7", 64) == "203.0.113.7"
    assert address_key("::ffff:203.0.113.7", 64) == "203.0.113.7"
    assert address_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64) == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:2::1", 64) == address_key("2001:db8:1:2:ffff::9", 64)
    assert address_key("2001:db8:1:3::1", 64) != address_key("2001:db8:1:2::1", 64)
    assert address_key("2001:db8:1:2ff::1", 56) == "2001:db8:1:200::/56"
    assert address_key("2001:db8::1", 128) == "2001:db8::1/128"
    assert address_key("fe80::1%eth0", 64) == "fe80::/64"


@pytest.mark.parametrize("address", ["-", "", "unknown", "x" * 10_000, "\udcff"])
def test_a_non_address_has_a_short_fixed_key(address):
    key = address_key(address, 64)
    assert key.startswith("other:") and len(key) == len("other:") + 16
    assert key == address_key(address, 64)


def test_every_key_is_bounded():
    longest = ipaddress.IPv6Address(2**128 - 1)
    assert len(address_key(str(longest), 128)) <= 64
    assert len(address_key("255.255.255.255", 64)) <= 64


def flood(prefix: str, count: int) -> list[dict[str, str]]:
    return [{"X-Forwarded-For": f"{prefix}{index:x}"} for index in range(1, count + 1)]


@pytest.mark.parametrize(
    "config_overrides",
    [{"limits.per_ip_per_minute": 30, "server.trusted_proxies": ["127.0.0.1/32"]}],
)
async def test_addresses_of_one_ipv6_64_share_the_limit(api, config_overrides):
    statuses = [
        (await api.post(REGISTER, json_body={}, headers=headers)).status
        for headers in flood("2001:db8:1:2:aaaa::", 35)
    ]
    assert statuses[:30] == [400] * 30
    assert statuses[30:] == [429] * 5
    # Another /64 has a count of its own.
    other = await api.post(REGISTER, json_body={}, headers={"X-Forwarded-For": "2001:db8:1:3::1"})
    assert other.status == 400


@pytest.mark.parametrize(
    "config_overrides",
    [
        {
            "limits.per_ip_per_minute": 4,
            "limits.ipv6_prefix": 48,
            "server.trusted_proxies": ["127.0.0.1/32"],
        }
    ],
)
async def test_the_ipv6_prefix_is_configurable(api, config_overrides):
    addresses = ["2001:db8:1:1::1", "2001:db8:1:2::1", "2001:db8:1:3::1", "2001:db8:1:4::1"]
    for address in addresses:
        response = await api.post(REGISTER, json_body={}, headers={"X-Forwarded-For": address})
        assert response.status == 400
    fifth = await api.post(REGISTER, json_body={}, headers={"X-Forwarded-For": "2001:db8:1:ff::"})
    assert fifth.status == 429


@pytest.mark.parametrize(
    "config_overrides",
    [{"limits.per_ip_per_minute": 2, "server.trusted_proxies": ["127.0.0.1/32"]}],
)
async def test_an_ipv4_mapped_address_counts_as_its_ipv4_address(api, config_overrides):
    for address in ("203.0.113.7", "::ffff:203.0.113.7"):
        response = await api.post(REGISTER, json_body={}, headers={"X-Forwarded-For": address})
        assert response.status == 400
    third = await api.post(REGISTER, json_body={}, headers={"X-Forwarded-For": "::ffff:cb00:7107"})
    assert third.status == 429


@pytest.mark.parametrize(
    ("written", "origin"),
    [
        ("https://app.example.com/", "https://app.example.com"),
        ("HTTPS://App.Example.COM", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("http://app.example.com:80/", "http://app.example.com"),
        ("http://localhost:3000/", "http://localhost:3000"),
        ("https://app.example.com:8443", "https://app.example.com:8443"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        (" https://xn--80ak6aa92e.com ", "https://xn--80ak6aa92e.com"),
    ],
)
def test_cors_origins_are_written_as_browsers_send_them(written, origin):
    assert normal_origin(written) == origin


@pytest.mark.parametrize(
    "written",
    [
        "https://app.example.com/login",
        "https://app.example.com/?next=/",
        "https://app.example.com#top",
        "https://*.example.com",
        "*",
        "null",
        "app.example.com",
        "ftp://app.example.com",
        "https://",
        "https://app.example.com:0",
        "https://app.example.com:70000",
        "https://пример.рф",
    ],
)
def test_what_is_no_origin_is_refused_naming_the_setting(written):
    with pytest.raises(ValueError, match=r"^server\.cors_origins: "):
        normal_origin(written)
