"""GoPay's fee schedule: what each kind of payment costs, and who pays it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from gopay.aggregates.errors import ValidationFailed
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import Money


class FeePayer(StrEnum):
    PAYER = "payer"  # on top of the amount
    PAYEE = "payee"  # out of the amount received


@dataclass(frozen=True)
class Rate:
    """A fixed part plus basis points of the amount, within a minimum and a maximum (minor units)."""

    fixed: int = 0
    bps: int = 0
    minimum: int = 0
    maximum: int | None = None

    def __post_init__(self) -> None:
        if min(self.fixed, self.bps, self.minimum) < 0 or (self.maximum or 0) < 0:
            raise ValidationFailed("fees are never negative")
        if self.maximum is not None and self.maximum < self.minimum:
            raise ValidationFailed("a fee's maximum is below its minimum")

    def fee_for(self, amount: int) -> int:
        """Rounded half up to the minor unit, never more than the amount itself."""
        fee = max(self.minimum, self.fixed + (amount * self.bps + 5_000) // 10_000)
        if self.maximum is not None:
            fee = min(fee, self.maximum)
        return min(fee, amount)


@dataclass(frozen=True)
class FeeRule(Rate):
    """What one kind of payment costs and who pays it; and, for an agent's flows (cash-in,
    cash-out), the commission GoPay pays the agent out of its fees account."""

    paid_by: FeePayer = FeePayer.PAYER
    commission: Rate | None = None


@dataclass(frozen=True)
class Fee:
    """The fee one payment pays, and who pays it."""

    money: Money
    paid_by: FeePayer


@dataclass(frozen=True)
class FeeSchedule:
    """A rule per kind of payment; a kind without one is free."""

    rules: Mapping[TransactionType, FeeRule] = field(default_factory=lambda: MappingProxyType({}))

    def fee_for(self, order_type: TransactionType, money: Money) -> Fee | None:
        rule = self.rules.get(order_type)
        amount = rule.fee_for(money.amount) if rule else 0
        return Fee(Money(amount, money.currency), rule.paid_by) if rule and amount else None

    def commission_for(self, order_type: TransactionType, money: Money) -> Money | None:
        """What an agent earns for carrying out a payment of this kind; None when nothing."""
        rule = self.rules.get(order_type)
        amount = rule.commission.fee_for(money.amount) if rule and rule.commission else 0
        return Money(amount, money.currency) if amount else None
