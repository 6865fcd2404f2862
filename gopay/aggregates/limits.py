"""What an account may spend and hold, by KYC tier: checked by the wallet on every payment."""

from __future__ import annotations

from dataclasses import dataclass

from gopay.aggregates.errors import DomainError
from gopay.aggregates.ledger import TransactionType

TIERS = ("unverified", "verified")

# Money leaving a wallet on its owner's initiative counts towards the limits; corrections
# (adjustments) and settlement of what was already held do not.
SPENDING_TYPES = frozenset({
    TransactionType.TRANSFER, TransactionType.QR_PAYMENT, TransactionType.BILL_PAYMENT,
    TransactionType.RECHARGE, TransactionType.CASH_OUT, TransactionType.PAYOUT})


class LimitExceeded(DomainError):
    code = "limit_exceeded"


@dataclass(frozen=True)
class TierLimits:
    """Minor units of the wallet's currency."""

    per_payment: int
    per_day: int
    max_balance: int


DEFAULT_LIMITS: dict[str, TierLimits] = {
    "unverified": TierLimits(per_payment=10_000, per_day=30_000, max_balance=100_000),
    "verified": TierLimits(per_payment=1_000_000, per_day=5_000_000, max_balance=50_000_000),
}
