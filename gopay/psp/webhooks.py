"""PSP webhook signatures: `GoPay-PSP-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.

The simulator signs with `sign`; GoPay's `POST /v1/psp/webhooks` checks with `verify` over
the raw body, before parsing it, and answers 400 to any `SignatureError`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

HEADER = "GoPay-PSP-Signature"
# A signature older (or newer) than this is refused, so a captured delivery cannot be replayed later.
TOLERANCE_SECONDS = 300

TIMESTAMP = re.compile(r"[0-9]{1,12}")
SIGNATURE = re.compile(r"[0-9a-f]{64}")


class SignatureError(ValueError):
    """The webhook cannot be trusted: the message says why."""


class MissingSignature(SignatureError):
    pass


class MalformedSignature(SignatureError):
    pass


class StaleSignature(SignatureError):
    pass


class WrongSignature(SignatureError):
    pass


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value that signs `body` at `timestamp` (now by default)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={_digest(secret, str(timestamp), body)}"


def verify(secret: str, header: str | None, body: bytes, *, now: float | None = None,
           tolerance: int = TOLERANCE_SECONDS) -> int:
    """Check the header against the raw body; answer the signed timestamp or raise `SignatureError`.

    Several `v1` entries are allowed (a PSP rotating its secret signs with both); one match
    is enough. Entries of other schemes are ignored.
    """
    if not header:
        raise MissingSignature(f"the {HEADER} header is missing")
    timestamp, signatures = _parse(header)
    expected = _digest(secret, timestamp, body)
    # compare_digest on every entry: the time taken tells nothing about which bytes matched.
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise WrongSignature("the signature does not match the body")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance:
        raise StaleSignature(f"the signature's timestamp is more than {tolerance} seconds away")
    return int(timestamp)


def _parse(header: str) -> tuple[str, list[str]]:
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, equals, value = item.strip().partition("=")
        if not equals:
            raise MalformedSignature(f"the {HEADER} header is not a list of key=value items")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not TIMESTAMP.fullmatch(timestamps[0]):
        raise MalformedSignature(f"the {HEADER} header needs exactly one t=<unix seconds>")
    if not signatures or not all(SIGNATURE.fullmatch(value) for value in signatures):
        raise MalformedSignature(f"the {HEADER} header needs v1=<64 lowercase hex digits>")
    return timestamps[0], signatures


def _digest(secret: str, timestamp: str, body: bytes) -> str:
    if not secret:
        raise ValueError("the PSP webhook secret is empty")
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
