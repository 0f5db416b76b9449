"""Which address a request came from, believing X-Forwarded-For only from trusted proxies,
and which per-address limit it counts against."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """`server.trusted_proxies`: addresses or CIDR ranges. ValueError names a bad entry."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            message = f"server.trusted_proxies: {entry!r} is not an address or range"
            raise ValueError(message) from exc
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """An address as proxies write it: `203.0.113.7`, `203.0.113.7:5678`, `2001:db8::1`,
    `[2001:db8::1]` or `[2001:db8::1]:443`; None for anything else.

    An IPv4-mapped IPv6 address (`::ffff:203.0.113.7`, from a dual-stack socket) is the IPv4
    address it maps, so it matches IPv4 ranges and counts as that address."""
    text = text.strip()
    if text.startswith("["):
        text, bracket, port = text[1:].partition("]")
        if not bracket or (port and not _is_port(port)):
            return None
    elif text.count(":") == 1:  # IPv4 with a port; an IPv6 address has two colons or more
        text, port = text.split(":")
        if not _is_port(":" + port):
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_port(written: str) -> bool:
    """`:` and one to five ASCII digits."""
    digits = written.removeprefix(":")
    return written.startswith(":") and digits.isascii() and digits.isdigit() and len(digits) <= 5


def _trusted(address: Address | None, trusted: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in trusted)


def client_ip(remote: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy.

    Behind trusted proxies, X-Forwarded-For is read from the right, skipping trusted hops;
    the first untrusted address is the client. Anything left of it could be made up by the
    client, so it is never used (a spoofed header cannot reset a limit, LG4).
    """
    if not forwarded_for or not _trusted(parse_address(remote), trusted):
        return remote
    hops = [hop for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            return remote  # a garbled header: fall back to the proxy itself
        if not _trusted(address, trusted):
            return str(address)
    # Every hop is a trusted proxy: the leftmost one is the closest to the client.
    return str(parse_address(hops[0])) if hops else remote


def address_key(address: str, ipv6_prefix: int) -> str:
    """The bucket the per-address limit counts `address` in (LG4).

    An IPv4 address counts alone. One IPv6 client is usually given a whole /64 and may pick
    any address in it, so IPv6 counts per network of `ipv6_prefix` bits. Anything that is not
    an address counts under a digest of it, so the key is short and of a fixed shape.
    """
    parsed = parse_address(address)
    if parsed is None:
        return "other:" + hashlib.sha256(address.encode("utf-8", "replace")).hexdigest()[:16]
    if isinstance(parsed, ipaddress.IPv4Address):
        return str(parsed)
    host_bits = 128 - ipv6_prefix
    network = ipaddress.IPv6Network((int(parsed) >> host_bits << host_bits, ipv6_prefix))
    return network.compressed


_DEFAULT_PORTS = {"http": 80, "https": 443}


def normal_origin(entry: str) -> str:
    """`server.cors_origins` entry as browsers send `Origin`: scheme://host[:port], lower
    case, the scheme's default port dropped, a bare trailing slash dropped. ValueError for
    what is no origin (a path, a query, a fragment, credentials, a wildcard, another scheme),
    as an origin is compared byte for byte with what the browser sends."""
    text = entry.strip()
    problem = f"server.cors_origins: {entry!r} is not an origin like https://app.example.com"
    if "*" in text:
        raise ValueError(f"{problem} (no wildcards: list each origin)")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{problem} (http:// or https:// and a host)")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in text or "#" in text:
        raise ValueError(f"{problem} (no path, query or fragment)")
    if parts.username is not None or parts.password is not None:
        # Not echoed: the part before "@" may be a password.
        raise ValueError("server.cors_origins: an origin has no user or password part")
    if not parts.hostname.isascii():
        raise ValueError(f"{problem} (write an international host name in its xn-- form)")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{problem} (the port must be a number from 1 to 65535)") from exc
    if port == 0:
        raise ValueError(f"{problem} (the port must be a number from 1 to 65535)")
    host = parts.hostname.lower()
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"
