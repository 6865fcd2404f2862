"""Money: an integer number of minor units in one ISO 4217 currency."""

from __future__ import annotations

from dataclasses import dataclass

from gopay.aggregates.errors import CurrencyMismatch, ValidationFailed

# Currencies GoPay holds wallets in, with their number of minor units.
CURRENCIES: dict[str, int] = {
    "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "CAD": 2, "AUD": 2, "JPY": 0, "KES": 2,
    "NGN": 2, "GHS": 2, "ZAR": 2, "INR": 2, "IDR": 2, "PHP": 2, "EGP": 2, "MAD": 2,
    "XOF": 0, "BRL": 2, "MXN": 2, "TZS": 2, "UGX": 0,
    "KWD": 3, "BHD": 3, "OMR": 3, "JOD": 3, "TND": 3,
}

# Far above any real payment, far below where a bigint or a JSON number loses precision.
MAX_AMOUNT = 10**15


@dataclass(frozen=True, slots=True)
class Money:
    """An amount of minor units (10.50 USD is Money(1050, "USD"))."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.amount) is not int:
            raise ValidationFailed("amount must be an integer number of minor units")
        if self.currency not in CURRENCIES:
            raise ValidationFailed(f"unsupported currency {self.currency!r}")
        if abs(self.amount) > MAX_AMOUNT:
            raise ValidationFailed("amount is too large")

    @classmethod
    def positive(cls, amount: int, currency: str) -> Money:
        """Money that moves: strictly more than zero."""
        money = cls(amount, currency)
        if money.amount <= 0:
            raise ValidationFailed("amount must be greater than zero")
        return money

    def in_major_units(self, *, grouped: bool = False) -> str:
        """The amount as people write it, with the currency's minor digits: 1050 USD is
        "10.50", 1050 JPY "1050", 1050 KWD "1.050" (thousands grouped with commas if asked)."""
        places = CURRENCIES[self.currency]
        whole, minor = divmod(abs(self.amount), 10**places)
        text = (f"{whole:,}" if grouped else str(whole)) + (f".{minor:0{places}d}" if places else "")
        return "-" + text if self.amount < 0 else text

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{other.currency} cannot be combined with {self.currency}")
