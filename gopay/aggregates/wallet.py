"""The wallet: one account of a person, company or agent, in one currency, never below zero."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import (
    AccountFrozen,
    CurrencyMismatch,
    InsufficientFunds,
    InvalidState,
    ValidationFailed,
)
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.limits import SPENDING_TYPES, TIERS, LimitExceeded, TierLimits
from gopay.aggregates.money import Money
from gopay.aggregates.recent_payments import RecentPayments


@dataclass(frozen=True)
class Hold:
    """Money reserved for a payment that completes later (a payout, a cash-out)."""

    amount: int  # what is still held: captures take from it, a release gives it all back
    entry_type: str
    day: str | None  # the UTC day it counts towards the daily limit
    spent: int  # what it counts towards that limit (its fee aside), until some is captured


class Wallet(Aggregate):
    """Holds a balance; `held` money is reserved for pending payouts and cash-outs."""

    class Opened(Aggregate.Created):
        owner_id: UUID
        currency: str

    @event(Opened)
    def __init__(self, owner_id: UUID, currency: str) -> None:
        self.owner_id = owner_id
        self.currency = currency
        self.balance = 0
        self.held = 0
        self.holds: Mapping[str, Hold] = MappingProxyType({})
        self.frozen = False
        self.tier = "unverified"
        # What the owner spent on `spent_day` (UTC), for the daily limit.
        self.spent_day: str | None = None
        self.spent_today = 0
        self.payments = RecentPayments()  # what fraud screening counts of the owner's payments

    @property
    def available(self) -> int:
        return self.balance - self.held

    def spent_on(self, day: date) -> int:
        """Spending that counts on `day`: a clock that stepped back counts towards the later day."""
        return self.spent_today if self.spent_day and self.spent_day >= day.isoformat() else 0

    def debit(self, money: Money, *, entry_id: UUID, entry_type: TransactionType,
              counterparty: str, reference: str, on: date,
              limits: TierLimits | None = None, made_at: datetime | None = None,
              device: str | None = None) -> None:
        """Take money out; refused when frozen, over the tier's limits, or below zero.

        A payment its owner made (`made_at`, from `device`) is remembered for fraud screening.
        """
        day = self._check_spending(money, entry_type, on, limits)
        self._debited(entry_id=entry_id, entry_type=entry_type, amount=money.amount,
                      currency=money.currency, balance_after=self.balance - money.amount,
                      counterparty=counterparty, reference=reference, day=day,
                      made_at=made_at.isoformat() if made_at else None, device=device)

    def pay_fee(self, money: Money, *, entry_id: UUID, reference: str) -> None:
        """Take the fee of a payment out: part of that payment, so no freeze or limit stops it."""
        self._check_currency(money)
        if money.amount > self.available:
            raise InsufficientFunds("not enough money in the wallet for the fee")
        self._debited(entry_id=entry_id, entry_type=TransactionType.FEE, amount=money.amount,
                      currency=money.currency, balance_after=self.balance - money.amount,
                      counterparty="fees", reference=reference, day=None,
                      made_at=None, device=None)

    def recover(self, money: Money, *, entry_id: UUID, entry_type: TransactionType,
                counterparty: str, reference: str) -> Money | None:
        """Take back money that was not the owner's to keep (a chargeback): as much as is
        available, frozen or not; what it takes, or None when there is nothing to take."""
        self._check_currency(money)
        taken = min(money.amount, self.available)
        if taken <= 0:
            return None
        self._debited(entry_id=entry_id, entry_type=entry_type, amount=taken,
                      currency=money.currency, balance_after=self.balance - taken,
                      counterparty=counterparty, reference=reference, day=None,
                      made_at=None, device=None)
        return Money(taken, money.currency)

    def credit(self, money: Money, *, entry_id: UUID, entry_type: TransactionType,
               counterparty: str, reference: str, limits: TierLimits | None = None) -> None:
        """Put money in; a frozen wallet can still receive, up to its tier's balance limit."""
        self._check_currency(money)
        if limits is not None and self.balance + money.amount > limits.max_balance:
            raise LimitExceeded("the receiving wallet cannot hold that much "
                                f"(its limit is {limits.max_balance})")
        self._credited(entry_id=entry_id, entry_type=entry_type, amount=money.amount,
                       currency=money.currency, balance_after=self.balance + money.amount,
                       counterparty=counterparty, reference=reference)

    def hold(self, money: Money, *, hold_id: UUID, entry_type: TransactionType, on: date,
             limits: TierLimits | None = None, fee: Money | None = None,
             counterparty: str | None = None, made_at: datetime | None = None,
             device: str | None = None) -> None:
        """Reserve money (and its fee) for a payment that completes later.

        The payment counts as spent from now; the fee, as for payments made at once, does not.
        A payment its owner made (`made_at`, to `counterparty`, from `device`) is remembered
        for fraud screening from now too.
        """
        if str(hold_id) in self.holds:
            raise InvalidState("this money is already held")
        total = money + fee if fee else money
        day = self._check_spending(money, entry_type, on, limits, total=total)
        self._held(hold_id=hold_id, amount=total.amount, spent=money.amount,
                   entry_type=entry_type, day=day, counterparty=counterparty,
                   made_at=made_at.isoformat() if made_at else None, device=device)

    def hold_back(self, money: Money, *, hold_id: UUID, entry_type: TransactionType) -> Money | None:
        """Reserve money that may not be the owner's to keep (a disputed payment): as much as
        is available, frozen or not, counted as no spending; what it holds, or None."""
        self._check_currency(money)
        if str(hold_id) in self.holds:
            raise InvalidState("this money is already held")
        held = min(money.amount, self.available)
        if held <= 0:
            return None
        self._held(hold_id=hold_id, amount=held, spent=0, entry_type=entry_type, day=None,
                   counterparty=None, made_at=None, device=None)
        return Money(held, money.currency)

    def capture(self, money: Money, *, hold_id: UUID, entry_type: TransactionType,
                counterparty: str, reference: str) -> None:
        """Take held money out for good (all of the hold, or part of it, line by line)."""
        self._check_currency(money)
        hold = self.holds.get(str(hold_id))
        if hold is None or money.amount > hold.amount:
            raise InvalidState("there is not that much held for this payment")
        self._captured(hold_id=hold_id, entry_type=entry_type, amount=money.amount,
                       currency=money.currency, balance_after=self.balance - money.amount,
                       counterparty=counterparty, reference=reference)

    def release(self, *, hold_id: UUID) -> None:
        """Give what is still held for a payment back to the available balance."""
        hold = self.holds.get(str(hold_id))
        if hold is None:
            raise InvalidState("nothing is held for this payment")
        self._released(hold_id=hold_id, amount=hold.amount)

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

    def _check_spending(self, money: Money, entry_type: TransactionType, on: date,
                        limits: TierLimits | None, total: Money | None = None) -> str:
        """Whether the owner may send `money` (costing `total` with a fee) now; the day it
        counts towards."""
        self._check_currency(money)
        if self.frozen:
            raise AccountFrozen("this wallet is frozen and cannot send money")
        day = max(on, date.fromisoformat(self.spent_day) if self.spent_day else date.min)
        if limits is not None and entry_type in SPENDING_TYPES:
            if money.amount > limits.per_payment:
                raise LimitExceeded(f"a single payment may be at most {limits.per_payment} "
                                    f"on the {self.tier} tier")
            if self.spent_on(day) + money.amount > limits.per_day:
                raise LimitExceeded(f"this would pass your daily limit of {limits.per_day}; "
                                    f"{limits.per_day - self.spent_on(day)} is left today")
        if (total or money).amount > self.available:
            raise InsufficientFunds("not enough money in the wallet")
        return day.isoformat()

    def _check_currency(self, money: Money) -> None:
        """Every movement is of a positive amount in this wallet's currency."""
        if money.amount <= 0:
            raise ValidationFailed("amount must be greater than zero")
        if money.currency != self.currency:
            raise CurrencyMismatch(f"this wallet holds {self.currency}, not {money.currency}")

    def _count_spending(self, entry_type: str, day: str | None, amount: int) -> None:
        if day is not None and entry_type in SPENDING_TYPES:
            if day != self.spent_day:
                self.spent_day, self.spent_today = day, 0
            self.spent_today += amount

    class Debited(Aggregate.Event):
        """Money out. Version 2 records the UTC day it counts towards the daily limit, version
        3 when its owner made the payment and from which device (None: not a payment made)."""

        class_version = 3
        entry_id: UUID
        entry_type: str
        amount: int
        currency: str
        balance_after: int
        counterparty: str
        reference: str
        day: str | None
        made_at: str | None
        device: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["day"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["made_at"] = state["device"] = None

    @event(Debited)
    def _debited(self, entry_id: UUID, entry_type: str, amount: int, currency: str,
                 balance_after: int, counterparty: str, reference: str,
                 day: str | None, made_at: str | None, device: str | None) -> None:
        self.balance -= amount
        self._count_spending(entry_type, day, amount)
        if made_at is not None:
            self.payments = self.payments.added(at=made_at, amount=amount,
                                                recipient=counterparty, device=device)

    class Credited(Aggregate.Event):
        entry_id: UUID
        entry_type: str
        amount: int
        currency: str
        balance_after: int
        counterparty: str
        reference: str

    @event(Credited)
    def _credited(self, entry_id: UUID, entry_type: str, amount: int, currency: str,
                  balance_after: int, counterparty: str, reference: str) -> None:
        self.balance += amount

    class Held(Aggregate.Event):
        """Money reserved. Version 2 records what for, the day it counts towards and how much
        of it counts (a fee does not); version 3, for a payment its owner made, when, to whom
        and from which device."""

        class_version = 3
        hold_id: UUID
        amount: int
        spent: int
        entry_type: str
        day: str | None
        counterparty: str | None
        made_at: str | None
        device: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["entry_type"] = TransactionType.PAYOUT.value
            state["day"] = None
            state["spent"] = state["amount"]

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["counterparty"] = state["made_at"] = state["device"] = None

    @event(Held)
    def _held(self, hold_id: UUID, amount: int, spent: int, entry_type: str,
              day: str | None, counterparty: str | None, made_at: str | None,
              device: str | None) -> None:
        self.held += amount
        self.holds = MappingProxyType(
            {**self.holds, str(hold_id): Hold(amount, entry_type, day, spent)})
        self._count_spending(entry_type, day, spent)
        if made_at is not None:
            self.payments = self.payments.added(at=made_at, amount=spent,
                                                recipient=counterparty or "", device=device)

    class Captured(Aggregate.Event):
        hold_id: UUID
        entry_type: str
        amount: int
        currency: str
        balance_after: int
        counterparty: str
        reference: str

    @event(Captured)
    def _captured(self, hold_id: UUID, entry_type: str, amount: int, currency: str,
                  balance_after: int, counterparty: str, reference: str) -> None:
        self.balance -= amount
        self.held -= amount
        hold = self.holds[str(hold_id)]
        rest = dict(self.holds)  # holds stay in the order they were made
        if hold.amount > amount:  # once some is paid, the payment counts as spent for good
            rest[str(hold_id)] = Hold(hold.amount - amount, hold.entry_type, hold.day, spent=0)
        else:
            del rest[str(hold_id)]
        self.holds = MappingProxyType(rest)

    class Released(Aggregate.Event):
        hold_id: UUID
        amount: int

    @event(Released)
    def _released(self, hold_id: UUID, amount: int) -> None:
        self.held -= amount
        hold = self.holds.get(str(hold_id))
        self.holds = MappingProxyType({k: v for k, v in self.holds.items() if k != str(hold_id)})
        if hold is not None and hold.day == self.spent_day and hold.entry_type in SPENDING_TYPES:
            self.spent_today -= hold.spent  # what was never paid does not count as spent

    class Frozen(Aggregate.Event):
        by: UUID
        reason: str

    @event(Frozen)
    def _frozen(self, by: UUID, reason: str) -> None:
        self.frozen = True

    class Unfrozen(Aggregate.Event):
        by: UUID
        reason: str

    @event(Unfrozen)
    def _unfrozen(self, by: UUID, reason: str) -> None:
        self.frozen = False

    class TierChanged(Aggregate.Event):
        tier: str
        by: UUID

    @event(TierChanged)
    def _tier_changed(self, tier: str, by: UUID) -> None:
        self.tier = tier
