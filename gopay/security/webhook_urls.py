"""Where GoPay may send a merchant's webhooks: public https addresses only, unless told otherwise.

A webhook is a request GoPay's own servers make to an address a customer chose, so an
address inside GoPay's network (loopback, private ranges, link-local cloud metadata) would
let a merchant reach what it should not. Such addresses are refused when an endpoint is
added, and again when a delivery is sent (a name can be made to resolve elsewhere later).
`GOPAY_WEBHOOK_ALLOW_PRIVATE=true` lifts this, and allows plain http, for development.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

LOCAL_NAMES = (".localhost", ".local", ".internal", ".home.arpa")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def refusal(url: str, *, allow_private: bool, resolve: bool = True) -> str | None:
    """Why GoPay will not send webhooks to `url`, or None when it may.

    `resolve`: also look the name up, and refuse it if any address it has is not public. A
    name that does not resolve (yet) is let through; each delivery looks it up again.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError:
        return "the URL cannot be read"
    problem = _shape_problem(parts, allow_private)
    if problem is not None or allow_private:
        return problem
    host = (parts.hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(LOCAL_NAMES):
        return f"{host} is a local name, not a public address"
    try:
        addresses: list[Address] = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = _resolved(host, port) if resolve else []
    private = next((address for address in addresses if not _public(address)), None)
    return None if private is None else f"{host} is not a public address ({private})"


def _shape_problem(parts: SplitResult, allow_private: bool) -> str | None:
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        return "a webhook URL is an https:// address"
    if parts.username or parts.password:
        return "a webhook URL carries no user name or password"
    return None


def _resolved(host: str, port: int) -> list[Address]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return address.is_global and not address.is_multicast
