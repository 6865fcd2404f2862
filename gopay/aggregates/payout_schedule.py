"""Merchants' payout schedules: when GoPay pays a merchant's wallet out to its bank account by itself.

A schedule is the merchant's standing instruction (daily, or weekly on a weekday; only when
at least a minimum is available; to one of its saved bank accounts). Each payout it starts
is recorded on it with its period (a UTC day, or an ISO week), so one period is paid out at
most once, and auditors see every change and every payout the schedule made.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import InvalidState, ValidationFailed
from gopay.aggregates.ledger import LEDGER_NAMESPACE
from gopay.aggregates.money import Money


class Frequency(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def period_due(frequency: Frequency, weekday: str | None, starts_on: date, today: date) -> str | None:
    """The period a payout is due for on `today` (UTC), or None when none is due yet.

    Daily: every day from the day the schedule was set, named `YYYY-MM-DD`. Weekly: the ISO
    week (`YYYY-Www`), from its weekday on (a day the job missed is caught up later that
    week), but not a payday that passed before the schedule was set.
    """
    if today < starts_on:
        return None
    if frequency == Frequency.DAILY:
        return today.isoformat()
    assert weekday is not None, "a weekly schedule has a weekday"
    payday = today - timedelta(days=today.weekday()) + timedelta(days=WEEKDAYS.index(weekday))
    if today < payday or payday < starts_on:
        return None
    year, week, _ = today.isocalendar()
    return f"{year}-W{week:02d}"


class PayoutSchedule(Aggregate):
    """One merchant's standing payout instruction, and the periods it has paid out."""

    @staticmethod
    def id_for(merchant_id: UUID) -> UUID:
        """One schedule per merchant: found again by whoever sets, stops or runs it."""
        return uuid5(LEDGER_NAMESPACE, f"payout-schedule/{merchant_id}")

    class Created(Aggregate.Created):
        merchant_id: UUID
        wallet_id: UUID

    @event(Created)
    def __init__(self, id: UUID, merchant_id: UUID, wallet_id: UUID) -> None:
        self.merchant_id = merchant_id
        self.wallet_id = wallet_id
        self.active = False
        self.frequency = Frequency.DAILY
        self.weekday: str | None = None
        self.minimum = 0
        self.currency = ""
        self.payment_method_id: UUID | None = None
        self.bank_account_shown = ""
        self.starts_on = date.min
        self.last_period: str | None = None

    def set(self, *, frequency: str, weekday: str | None, minimum: Money, payment_method_id: UUID,
            bank_account_shown: str, today: date, by: UUID) -> None:
        """Pay out on these terms from `today` on (a period already paid stays paid)."""
        if frequency not in tuple(Frequency):
            raise ValidationFailed("frequency is daily or weekly")
        if frequency == Frequency.WEEKLY and weekday not in WEEKDAYS:
            raise ValidationFailed(f"a weekly schedule needs a weekday: one of {', '.join(WEEKDAYS)}")
        if frequency == Frequency.DAILY and weekday is not None:
            raise ValidationFailed("a daily schedule has no weekday")
        if minimum.amount <= 0:
            raise ValidationFailed("the minimum must be greater than zero")
        if (self.active and frequency == self.frequency and weekday == self.weekday
                and minimum.amount == self.minimum and minimum.currency == self.currency
                and payment_method_id == self.payment_method_id):
            return  # the same terms again: nothing changes, and the schedule keeps its start
        self._set(frequency=frequency, weekday=weekday, minimum=minimum.amount,
                  currency=minimum.currency, payment_method_id=payment_method_id,
                  bank_account_shown=bank_account_shown, starts_on=today.isoformat(), by=by)

    def stop(self, *, by: UUID) -> None:
        """No more payouts until the schedule is set again (one already started goes on)."""
        if self.active:
            self._stopped(by=by)

    def due(self, today: date) -> str | None:
        """The period to pay out now, or None (stopped, not yet due, or paid already)."""
        if not self.active:
            return None
        period = period_due(self.frequency, self.weekday, self.starts_on, today)
        return None if period == self.last_period else period

    def start_payout(self, *, period: str, order_id: UUID, money: Money, today: date) -> None:
        """Record the payout of `period` (its order holds the money): the period is done."""
        if self.due(today) != period:
            raise InvalidState(f"no payout is due for {period} on this schedule now")
        if money.amount < self.minimum or money.currency != self.currency:
            raise InvalidState("less than the schedule's minimum is available")
        self._payout_started(period=period, order_id=order_id, amount=money.amount,
                             currency=money.currency)

    class Set(Aggregate.Event):
        frequency: str
        weekday: str | None
        minimum: int
        currency: str
        payment_method_id: UUID
        bank_account_shown: str  # country and last four, as statements name it
        starts_on: str
        by: UUID

    @event(Set)
    def _set(self, frequency: str, weekday: str | None, minimum: int, currency: str,
             payment_method_id: UUID, bank_account_shown: str, starts_on: str, by: UUID) -> None:
        self.active = True
        self.frequency = Frequency(frequency)
        self.weekday = weekday
        self.minimum = minimum
        self.currency = currency
        self.payment_method_id = payment_method_id
        self.bank_account_shown = bank_account_shown
        self.starts_on = date.fromisoformat(starts_on)

    class Stopped(Aggregate.Event):
        by: UUID

    @event(Stopped)
    def _stopped(self, by: UUID) -> None:
        self.active = False

    class PayoutStarted(Aggregate.Event):
        period: str
        order_id: UUID
        amount: int
        currency: str

    @event(PayoutStarted)
    def _payout_started(self, period: str, order_id: UUID, amount: int, currency: str) -> None:
        self.last_period = period
