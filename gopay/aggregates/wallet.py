"""The wallet: one account of a person, company or agent, in one currency, never below zero."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import (
    AccountFrozen,
    CurrencyMismatch,
    InsufficientFunds,
    ValidationFailed,
)
from gopay.aggregates.limits import SPENDING_TYPES, TIERS, LimitExceeded, TierLimits
from gopay.aggregates.money import Money


class Wallet(Aggregate):
    """Holds a balance; `held` money is reserved for pending payouts and cash-outs."""

    @event("Opened")
    def __init__(self, owner_id: UUID, currency: str) -> None:
        self.owner_id = owner_id
        self.currency = currency
        self.balance = 0
        self.held = 0
        self.frozen = False
        self.tier = "unverified"
        # What the owner spent on `spent_day` (UTC), for the daily limit.
        self.spent_day: str | None = None
        self.spent_today = 0

    @property
    def available(self) -> int:
        return self.balance - self.held

    def spent_on(self, day: date) -> int:
        """Spending that counts on `day`: a clock that stepped back counts towards the later day."""
        return self.spent_today if self.spent_day and self.spent_day >= day.isoformat() else 0

    def debit(self, money: Money, *, entry_id: UUID, entry_type: str,
              counterparty: str, reference: str, limits: TierLimits | None = None,
              on: date | None = None) -> None:
        """Take money out; refused when frozen, over the tier's limits, or below zero."""
        self._check_currency(money)
        if self.frozen:
            raise AccountFrozen("this wallet is frozen and cannot send money")
        day = max(on or datetime.now(UTC).date(),
                  date.fromisoformat(self.spent_day) if self.spent_day else date.min)
        if limits is not None and entry_type in SPENDING_TYPES:
            if money.amount > limits.per_payment:
                raise LimitExceeded(f"a single payment may be at most {limits.per_payment} "
                                    f"on the {self.tier} tier")
            if self.spent_on(day) + money.amount > limits.per_day:
                raise LimitExceeded(f"this would pass your daily limit of {limits.per_day}; "
                                    f"{limits.per_day - self.spent_on(day)} is left today")
        if money.amount > self.available:
            raise InsufficientFunds("not enough money in the wallet")
        self._debited(entry_id=entry_id, entry_type=entry_type, amount=money.amount,
                      currency=money.currency, balance_after=self.balance - money.amount,
                      counterparty=counterparty, reference=reference, day=day.isoformat())

    def credit(self, money: Money, *, entry_id: UUID, entry_type: str,
               counterparty: str, reference: str, limits: TierLimits | None = None) -> None:
        """Put money in; a frozen wallet can still receive, up to its tier's balance limit."""
        self._check_currency(money)
        if limits is not None and self.balance + money.amount > limits.max_balance:
            raise LimitExceeded("the receiving wallet cannot hold that much "
                                f"(its limit is {limits.max_balance})")
        self._credited(entry_id=entry_id, entry_type=entry_type, amount=money.amount,
                       currency=money.currency, balance_after=self.balance + money.amount,
                       counterparty=counterparty, reference=reference)

    def hold(self, money: Money, *, hold_id: UUID) -> None:
        """Reserve money for a payment that completes later."""
        self._check_currency(money)
        if self.frozen:
            raise AccountFrozen("this wallet is frozen and cannot send money")
        if money.amount > self.available:
            raise InsufficientFunds("not enough money in the wallet")
        self._held(hold_id=hold_id, amount=money.amount)

    def release(self, money: Money, *, hold_id: UUID) -> None:
        """Give reserved money back to the available balance."""
        self._check_currency(money)
        if money.amount > self.held:
            raise InsufficientFunds("cannot release more than is held")
        self._released(hold_id=hold_id, amount=money.amount)

    def freeze(self, *, by: UUID, reason: str) -> None:
        if not self.frozen:
            self._frozen(by=by, reason=reason)

    def unfreeze(self, *, by: UUID, reason: str) -> None:
        if self.frozen:
            self._unfrozen(by=by, reason=reason)

    def change_tier(self, tier: str, *, by: UUID) -> None:
        """Follow its owner's KYC decision: the tier picks the limits."""
        if tier not in TIERS:
            raise ValidationFailed(f"unknown tier {tier!r}")
        if tier != self.tier:
            self._tier_changed(tier=tier, by=by)

    def _check_currency(self, money: Money) -> None:
        """Every movement is of a positive amount in this wallet's currency."""
        if money.amount <= 0:
            raise ValidationFailed("amount must be greater than zero")
        if money.currency != self.currency:
            raise CurrencyMismatch(f"this wallet holds {self.currency}, not {money.currency}")

    class Debited(Aggregate.Event):
        """Money out. Version 2 records the UTC day it counts towards the daily limit."""

        class_version = 2
        entry_id: UUID
        entry_type: str
        amount: int
        currency: str
        balance_after: int
        counterparty: str
        reference: str
        day: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["day"] = None

    @event(Debited)
    def _debited(self, entry_id: UUID, entry_type: str, amount: int, currency: str,
                 balance_after: int, counterparty: str, reference: str,
                 day: str | None) -> None:
        self.balance -= amount
        if day is not None and entry_type in SPENDING_TYPES:
            if day != self.spent_day:
                self.spent_day, self.spent_today = day, 0
            self.spent_today += amount

    @event("Credited")
    def _credited(self, entry_id: UUID, entry_type: str, amount: int, currency: str,
                  balance_after: int,
                  counterparty: str, reference: str) -> None:
        self.balance += amount

    @event("Held")
    def _held(self, hold_id: UUID, amount: int) -> None:
        self.held += amount

    @event("Released")
    def _released(self, hold_id: UUID, amount: int) -> None:
        self.held -= amount

    @event("Frozen")
    def _frozen(self, by: UUID, reason: str) -> None:
        self.frozen = True

    @event("Unfrozen")
    def _unfrozen(self, by: UUID, reason: str) -> None:
        self.frozen = False

    @event("TierChanged")
    def _tier_changed(self, tier: str, by: UUID) -> None:
        self.tier = tier
