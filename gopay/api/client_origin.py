"""Where a request comes from, for fraud screening: the client's address and its country.

The country is looked up in the offline database the `geoip2fast` package ships, so no
request waits on a network call. X-Forwarded-For names the client only when the connection
comes from a proxy GOPAY_TRUSTED_PROXIES lists; anyone else could write any address there.
"""

from __future__ import annotations

import ipaddress
from functools import cache

from geoip2fast import GeoIP2Fast

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def _database() -> GeoIP2Fast:
    return GeoIP2Fast()


@cache
def _networks(trusted_proxies: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in trusted_proxies.split(",") if part.strip())


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: str) -> str | None:
    """The client's address: the peer's, or (behind a trusted proxy) the last one the proxies
    did not add themselves."""
    if peer is None or not forwarded_for or not trusted_proxies:
        return peer
    trusted = _networks(trusted_proxies)
    hops = [peer, *reversed([hop.strip() for hop in forwarded_for.split(",") if hop.strip()])]
    for hop in hops:
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return None  # a mangled header names nobody
        if not any(address in network for network in trusted):
            return hop
    return hops[-1]


def country_of(address: str | None) -> str | None:
    """ISO country code of a public address; None for private, unknown or malformed ones."""
    if not address:
        return None
    try:
        if not ipaddress.ip_address(address).is_global:
            return None
    except ValueError:
        return None
    code = _database().lookup(address).country_code
    return code if isinstance(code, str) and len(code) == 2 and code.isalpha() else None
