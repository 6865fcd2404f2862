"""What makes a card, bank account, digital wallet or crypto address acceptable, and how it is shown.

Each check returns an `Instrument`: the secret the vault keeps (the full card number, IBAN,
wallet account or address), the masked details that events and answers may hold, and the
holder's name. The CVC is checked and then forgotten: nothing here keeps it. Every refusal
is a `ValidationFailed` naming the field, never the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from email_validator import EmailNotValidError, validate_email
from stdnum import bitcoin, iban, luhn
from stdnum.exceptions import InvalidChecksum

from gopay.aggregates.errors import ValidationFailed

# ASCII digits only: str.isdigit() would also let through the digits of other scripts.
CARD_NUMBER = re.compile(r"[0-9]{13,19}")
CVC = re.compile(r"[0-9]{3,4}")
IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{8,30}")
PHONE = re.compile(r"\+[1-9][0-9]{6,14}")
HANDLE = re.compile(r"[@$]?[A-Za-z0-9][A-Za-z0-9_.-]{2,63}")
EVM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")

# Card brands by the leading digits of the number (ranges of prefixes of one length each).
BRANDS: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = (
    ("amex", ((34, 34), (37, 37))),
    ("diners", ((300, 305), (36, 36), (38, 39))),
    ("discover", ((6011, 6011), (644, 649), (65, 65))),
    ("jcb", ((3528, 3589),)),
    ("mastercard", ((51, 55), (2221, 2720))),
    ("unionpay", ((62, 62),)),
    ("visa", ((4, 4),)),
)
WALLET_PROVIDERS = ("alipay", "apple_pay", "cash_app", "google_pay", "mpesa", "paypal", "venmo",
                    "wechat_pay")
# USDC is an ERC-20 token: it is sent to an Ethereum address.
CRYPTO_NETWORKS = ("btc", "eth", "usdc")
WRONG_IBAN_FORM = "bank_account.iban does not have the length and format its country uses"
# Cards are issued for a few years at most; anything beyond this is a typo.
MAX_YEARS_AHEAD = 50


@dataclass(frozen=True)
class Instrument:
    """A checked payment method: what to vault, what may be shown, and whose it is."""

    kind: str
    secret: str = field(repr=False)
    details: dict[str, Any]
    holder_name: str | None = None

    @property
    def identity(self) -> str:
        """What the owner's fingerprint covers: the same account twice is the same identity."""
        return identity(self.kind, self.details, self.secret)

    @property
    def canonical(self) -> str:
        """Everything this request asked for except the CVC, for idempotency comparisons."""
        return json.dumps([self.kind, self.secret, self.details, self.holder_name],
                          sort_keys=True, separators=(",", ":"))


def identity(kind: str, details: Mapping[str, Any], secret: str) -> str:
    scope = details.get("provider") or details.get("network") or ""
    return f"{kind}:{scope}:{secret}"


def card(number: str, exp_month: int, exp_year: int, cvc: str, holder_name: str, *,
         today: date) -> Instrument:
    """A card that passes the Luhn check and has not expired; `exp_year` may have two digits."""
    digits = re.sub(r"[ -]", "", number)
    if not CARD_NUMBER.fullmatch(digits):
        raise ValidationFailed("card.number must be 13 to 19 digits (spaces and dashes allowed)")
    if not luhn.is_valid(digits):
        raise ValidationFailed("card.number fails the Luhn check: it is mistyped")
    if not 1 <= exp_month <= 12:
        raise ValidationFailed("card.exp_month must be from 1 to 12")
    year = 2000 + exp_year if 0 <= exp_year < 100 else exp_year
    if (year, exp_month) < (today.year, today.month):
        raise ValidationFailed("the card has expired (card.exp_month, card.exp_year)")
    if year > today.year + MAX_YEARS_AHEAD:
        raise ValidationFailed("card.exp_year is too far in the future")
    if not CVC.fullmatch(cvc):
        raise ValidationFailed("card.cvc must be 3 or 4 digits")
    return Instrument("card", digits, {"brand": card_brand(digits), "last4": digits[-4:],
                                       "exp_month": exp_month, "exp_year": year},
                      _holder(holder_name, "card.holder_name"))


def card_brand(digits: str) -> str:
    for brand, ranges in BRANDS:
        for low, high in ranges:
            if low <= int(digits[:len(str(low))]) <= high:
                return brand
    return "unknown"


def bank_account(number: str, holder_name: str) -> Instrument:
    """An IBAN with valid mod-97 check digits and its country's length and format."""
    compact = re.sub(r"[ -]", "", number).upper()
    if not IBAN_SHAPE.fullmatch(compact):
        raise ValidationFailed("bank_account.iban is not an IBAN")
    try:
        # The country's own rules, not its bank registry: a registry out of date must not
        # refuse a real account.
        iban.validate(compact, check_country=False)
    except InvalidChecksum:
        # The check digits are tested first: say so only if the rest has its country's form.
        corrected = compact[:2] + iban.calc_check_digits(compact) + compact[4:]
        if iban.is_valid(corrected, check_country=False):
            raise ValidationFailed("bank_account.iban fails the mod-97 check: it is mistyped") from None
        raise ValidationFailed(WRONG_IBAN_FORM) from None
    except ValueError:
        raise ValidationFailed(WRONG_IBAN_FORM) from None
    return Instrument("bank_account", compact,
                      {"last4": compact[-4:], "country": compact[:2]},
                      _holder(holder_name, "bank_account.holder_name"))


def digital_wallet(provider: str, account: str) -> Instrument:
    """An account with a known wallet provider: an e-mail address, E.164 phone or handle."""
    if provider not in WALLET_PROVIDERS:
        raise ValidationFailed(f"digital_wallet.provider must be one of {', '.join(WALLET_PROVIDERS)}")
    account = account.strip()
    if PHONE.fullmatch(account):
        masked = account[:2] + "*" * (len(account) - 6) + account[-4:]
    elif "@" in account[1:]:
        try:
            account = validate_email(account, check_deliverability=False).normalized
        except EmailNotValidError:
            raise ValidationFailed("digital_wallet.account is not a valid e-mail address") from None
        local, _, domain = account.rpartition("@")
        masked = f"{local[0]}***@{domain}"
    elif HANDLE.fullmatch(account):
        account = account.lower()
        masked = account[:2] + "***" + account[-1]
    else:
        raise ValidationFailed(
            "digital_wallet.account must be an e-mail address, an E.164 phone number or a handle")
    return Instrument("digital_wallet", account, {"provider": provider, "account": masked})


def crypto(network: str, address: str) -> Instrument:
    """An address of the right shape for its network (and, for bitcoin, its checksum)."""
    address = address.strip()
    if network == "btc":
        if address[:3].lower() == "bc1":
            address = address.lower()  # bech32 ignores case; keep one spelling
        try:
            bitcoin.validate(address)
        except ValueError:
            raise ValidationFailed("crypto.address is not a bitcoin address") from None
    elif network in ("eth", "usdc"):
        # The mixed-case EIP-55 checksum needs Keccak-256, which neither the standard library
        # nor `cryptography` offers: the shape is checked and the address kept in lower case.
        if not EVM_ADDRESS.fullmatch(address):
            raise ValidationFailed("crypto.address must be 0x and 40 hex digits")
        address = address.lower()
    else:
        raise ValidationFailed(f"crypto.network must be one of {', '.join(CRYPTO_NETWORKS)}")
    return Instrument("crypto", address,
                      {"network": network, "address": f"{address[:6]}...{address[-4:]}"})


def _holder(name: str, where: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200 or not name.isprintable():
        raise ValidationFailed(f"{where} must be 1 to 200 printable characters")
    return name
