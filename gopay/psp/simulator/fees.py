"""What the simulated PSP keeps for each operation: a percentage plus a fixed part, per kind of operation.

`GOPAY_PSP_SIM_FEES` changes any of them, as JSON of the same shape, for example
`{"charge.card": {"basis_points": 250, "fixed": 25}, "payout.bank_account": {"fixed": 0}}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FeeRule:
    """`basis_points` of the amount (rounded half up) plus `fixed` minor units, at most `cap`."""

    basis_points: int = 0
    fixed: int = 0
    cap: int | None = None

    def __post_init__(self) -> None:
        if min(self.basis_points, self.fixed, self.cap or 0) < 0:
            raise ValueError("fees are not negative")

    def fee(self, amount: int) -> int:
        fee = (amount * self.basis_points + 5_000) // 10_000 + self.fixed
        return fee if self.cap is None else min(fee, self.cap)


# Roughly Stripe's public US prices; the keys are `<operation>.<instrument>`.
DEFAULT_FEES: dict[str, FeeRule] = {
    "charge.card": FeeRule(basis_points=290, fixed=30),
    "charge.bank_account": FeeRule(basis_points=80, cap=500),
    "charge.digital_wallet": FeeRule(basis_points=340, fixed=30),
    "payout.bank_account": FeeRule(fixed=25),
    "payout.card": FeeRule(basis_points=150, fixed=25),
    "refund": FeeRule(),
    "chargeback": FeeRule(fixed=1_500),
}


def fee_schedule(overrides: dict[str, dict[str, Any]]) -> dict[str, FeeRule]:
    """The default schedule with the configured rules in place of the defaults they name."""
    unknown = set(overrides) - set(DEFAULT_FEES)
    if unknown:
        raise ValueError(f"unknown fee keys {sorted(unknown)}; known: {sorted(DEFAULT_FEES)}")
    return {**DEFAULT_FEES, **{key: FeeRule(**rule) for key, rule in overrides.items()}}
