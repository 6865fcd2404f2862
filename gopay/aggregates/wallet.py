"""The wallet: one account of a person, company or agent, in one currency, never below zero."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import (
    AccountFrozen,
    CurrencyMismatch,
    InsufficientFunds,
    ValidationFailed,
)
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

    @property
    def available(self) -> int:
        return self.balance - self.held

    def debit(self, money: Money, *, entry_id: UUID, entry_type: str,
              counterparty: str, reference: str) -> None:
        """Take money out; refused when frozen or when it would leave less than nothing."""
        self._check_currency(money)
        if self.frozen:
            raise AccountFrozen("this wallet is frozen and cannot send money")
        if money.amount > self.available:
            raise InsufficientFunds("not enough money in the wallet")
        self._debited(entry_id=entry_id, entry_type=entry_type, amount=money.amount,
                      currency=money.currency, balance_after=self.balance - money.amount,
                      counterparty=counterparty, reference=reference)

    def credit(self, money: Money, *, entry_id: UUID, entry_type: str,
               counterparty: str, reference: str) -> None:
        """Put money in; a frozen wallet can still receive."""
        self._check_currency(money)
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

    def _check_currency(self, money: Money) -> None:
        """Every movement is of a positive amount in this wallet's currency."""
        if money.amount <= 0:
            raise ValidationFailed("amount must be greater than zero")
        if money.currency != self.currency:
            raise CurrencyMismatch(f"this wallet holds {self.currency}, not {money.currency}")

    @event("Debited")
    def _debited(self, entry_id: UUID, entry_type: str, amount: int, currency: str,
                 balance_after: int,
                 counterparty: str, reference: str) -> None:
        self.balance -= amount

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
