"""QR payloads: a QR code's terms as compact text a phone scans, signed so nobody can forge or alter them.

`GOPAY1.<terms>.<signature>`: the terms are compact JSON in base64url (the code's id, the
merchant's wallet, the amount when fixed, the currency, the expiry in unix seconds, the
reference), the signature is HMAC-SHA256 of everything before it under GoPay's QR key
(`GOPAY_QR_SIGNING_KEY`). The key never leaves GoPay, so only GoPay can make a payload
that reads back, and changing one character of one makes it unreadable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from gopay.aggregates.money import CURRENCIES, MAX_AMOUNT
from gopay.aggregates.qr_code import QrInvalid, QrTerms

PREFIX = "GOPAY1."
# Far more than any payload GoPay makes (about 250 characters); refused before any work.
MAX_LENGTH = 1_000


def qr_payload(terms: QrTerms, key: str) -> str:
    """The signed text of a QR code: the same terms and key always give the same text."""
    fields: dict[str, Any] = {"i": terms.qr_id.hex, "w": terms.merchant_wallet_id.hex,
                              "c": terms.currency}
    if terms.amount is not None:
        fields["a"] = terms.amount
    if terms.expires_at is not None:
        fields["e"] = int(terms.expires_at.timestamp())
    if terms.reference:
        fields["r"] = terms.reference
    body = json.dumps(fields, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    signed = PREFIX + _encode(body.encode())
    return f"{signed}.{_encode(_mac(key, signed))}"


def read_qr_payload(payload: str, key: str) -> QrTerms:
    """The terms of a payload GoPay signed; `QrInvalid` for anything else."""
    if not isinstance(payload, str) or len(payload) > MAX_LENGTH or not payload.startswith(PREFIX):
        raise QrInvalid("this is not a GoPay QR code")
    signed, _, signature = payload.rpartition(".")
    try:
        genuine = hmac.compare_digest(_decode(signature), _mac(key, signed))
    except ValueError:
        genuine = False
    if not genuine:
        raise QrInvalid("this QR code was not made by GoPay, or it was altered")
    try:
        fields = json.loads(_decode(signed.removeprefix(PREFIX)))
        return _terms(fields)
    except (ValueError, TypeError, KeyError, OverflowError) as error:  # signed, so ours: a bug
        raise QrInvalid("this QR code cannot be read") from error


def _terms(fields: Any) -> QrTerms:
    if not isinstance(fields, dict):
        raise TypeError("terms")
    amount, expiry = fields.get("a"), fields.get("e")
    if amount is not None and not (type(amount) is int and 0 < amount <= MAX_AMOUNT):
        raise ValueError("amount")
    if fields["c"] not in CURRENCIES:
        raise ValueError("currency")
    return QrTerms(qr_id=UUID(hex=fields["i"]), merchant_wallet_id=UUID(hex=fields["w"]),
                   amount=amount, currency=fields["c"], reference=str(fields.get("r", "")),
                   expires_at=datetime.fromtimestamp(int(expiry), UTC) if expiry is not None else None)


def _mac(key: str, text: str) -> bytes:
    if not key:
        raise ValueError("the QR signing key is empty")
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).digest()


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    """Strict base64url: one spelling per value, so no character can change unnoticed."""
    try:
        data = base64.b64decode(text.encode("ascii") + b"=" * (-len(text) % 4), altchars=b"-_",
                                validate=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise ValueError("not base64url") from error
    if _encode(data) != text:
        raise ValueError("not canonical base64url")
    return data
