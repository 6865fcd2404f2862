"""The payout schedules read model: each merchant's schedule, and the payouts it started.

A payout's status, PSP reference and failure reason are the payment order's, read from the
wallets view's `payment_orders` (every view commits in the same page transaction, so the
two always agree); the due-payout job reads each schedule's wallet from `wallets` the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow

from gopay.aggregates.payout_schedule import PayoutSchedule
from gopay.projections.view import PagedView

PAYOUTS = (
    "SELECT s.order_id, s.merchant_id, s.wallet_id, s.period, s.amount, s.currency, s.created_at, "
    "COALESCE(o.status, 'pending') AS status, o.psp_reference, o.failure_reason, "
    "o.updated_at FROM scheduled_payouts s LEFT JOIN payment_orders o ON o.id = s.order_id "
    "WHERE s.merchant_id = %(merchant)s AND (%(after)s::uuid IS NULL "
    "OR (s.created_at, s.order_id) < (SELECT created_at, order_id FROM scheduled_payouts "
    "WHERE order_id = %(after)s)) AND (%(order)s::uuid IS NULL OR s.order_id = %(order)s) "
    "ORDER BY s.created_at DESC, s.order_id DESC LIMIT %(limit)s")


class PayoutScheduleView(PagedView):
    """Merchants' payout schedules, and the payouts they made."""

    tables = ("payout_schedules", "scheduled_payouts")
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS payout_schedules (
            merchant_id uuid PRIMARY KEY, id uuid NOT NULL, wallet_id uuid NOT NULL,
            active boolean NOT NULL DEFAULT false, frequency text, weekday text,
            minimum bigint, currency text, payment_method_id uuid, bank_account_shown text,
            starts_on date, last_period text, updated_at timestamptz NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS scheduled_payouts (
            order_id uuid PRIMARY KEY, merchant_id uuid NOT NULL, wallet_id uuid NOT NULL,
            period text NOT NULL, amount bigint NOT NULL, currency text NOT NULL,
            created_at timestamptz NOT NULL)""",
        """CREATE INDEX IF NOT EXISTS scheduled_payouts_merchant_idx
            ON scheduled_payouts (merchant_id, created_at DESC, order_id DESC)""",
    )

    def start_page(self) -> None:
        self._created: list[tuple[Any, ...]] = []
        self._changes: list[dict[str, Any]] = []
        self._payouts: list[tuple[Any, ...]] = []

    def schedule_created(self, merchant_id: UUID, schedule_id: UUID, wallet_id: UUID,
                         at: datetime) -> None:
        self._created.append((merchant_id, schedule_id, wallet_id, at))

    def schedule_changed(self, schedule_id: UUID, at: datetime, **columns: Any) -> None:
        self._changes.append({"id": schedule_id, "at": at, **columns})

    def payout_started(self, row: tuple[Any, ...]) -> None:
        self._payouts.append(row)

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        if self._created:
            cursor.executemany(
                "INSERT INTO payout_schedules (merchant_id, id, wallet_id, updated_at) "
                "VALUES (%s, %s, %s, %s)", self._created)
        for change in self._changes:  # few, and in log order
            cursor.execute(
                "UPDATE payout_schedules SET updated_at = %(at)s, "
                "active = COALESCE(%(active)s, active), "
                "frequency = COALESCE(%(frequency)s, frequency), "
                "weekday = CASE WHEN %(frequency)s::text IS NULL THEN weekday ELSE %(weekday)s END, "
                "minimum = COALESCE(%(minimum)s, minimum), currency = COALESCE(%(currency)s, currency), "
                "payment_method_id = COALESCE(%(payment_method_id)s, payment_method_id), "
                "bank_account_shown = COALESCE(%(bank_account_shown)s, bank_account_shown), "
                "starts_on = COALESCE(%(starts_on)s::date, starts_on), "
                "last_period = COALESCE(%(last_period)s, last_period) WHERE id = %(id)s",
                {"active": None, "frequency": None, "weekday": None, "minimum": None,
                 "currency": None, "payment_method_id": None, "bank_account_shown": None,
                 "starts_on": None, "last_period": None, **change})
        if self._payouts:
            cursor.executemany(
                "INSERT INTO scheduled_payouts (order_id, merchant_id, wallet_id, period, amount, "
                "currency, created_at) SELECT %s, merchant_id, wallet_id, %s, %s, %s, %s "
                "FROM payout_schedules WHERE id = %s", self._payouts)

    # Queries

    def schedule(self, merchant_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM payout_schedules WHERE merchant_id = %s", (merchant_id,))
        return rows[0] if rows else None

    def payable_schedules(self, limit: int, after: UUID | None = None) -> list[dict[str, Any]]:
        """Active schedules whose wallet is not frozen and has at least the minimum
        available, by merchant id from `after` (the job decides which are due today)."""
        return self.query(
            "SELECT s.* FROM payout_schedules s JOIN wallets w ON w.wallet_id = s.wallet_id "
            "WHERE s.active AND NOT w.frozen AND w.balance - w.held >= s.minimum "
            "AND s.merchant_id > COALESCE(%s, '00000000-0000-0000-0000-000000000000'::uuid) "
            "ORDER BY s.merchant_id LIMIT %s", (after, limit))

    def payouts(self, merchant_id: UUID, *, limit: int, after: UUID | None = None
                ) -> list[dict[str, Any]]:
        """A merchant's scheduled payouts, newest first; `after` is the last id of the page before."""
        return self.query(PAYOUTS, {"merchant": merchant_id, "after": after, "order": None,
                                    "limit": limit})

    def payout(self, merchant_id: UUID, order_id: UUID) -> dict[str, Any] | None:
        """One of the merchant's scheduled payouts (anyone else's is not found)."""
        rows = self.query(PAYOUTS, {"merchant": merchant_id, "after": None, "order": order_id,
                                    "limit": 1})
        return rows[0] if rows else None


class PayoutScheduleProjection(Projection[PayoutScheduleView]):
    """Turns payout schedules' events into the merchants' schedules and payouts."""

    name = "payout_schedule_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events this read model does not show."""

    @process_event.register
    def _(self, e: PayoutSchedule.Created, tracking: Tracking) -> None:
        self.view.schedule_created(e.merchant_id, e.originator_id, e.wallet_id, e.timestamp)

    @process_event.register
    def _(self, e: PayoutSchedule.Set, tracking: Tracking) -> None:
        self.view.schedule_changed(
            e.originator_id, e.timestamp, active=True, frequency=e.frequency, weekday=e.weekday,
            minimum=e.minimum, currency=e.currency, payment_method_id=e.payment_method_id,
            bank_account_shown=e.bank_account_shown, starts_on=e.starts_on)

    @process_event.register
    def _(self, e: PayoutSchedule.Stopped, tracking: Tracking) -> None:
        self.view.schedule_changed(e.originator_id, e.timestamp, active=False)

    @process_event.register
    def _(self, e: PayoutSchedule.PayoutStarted, tracking: Tracking) -> None:
        self.view.schedule_changed(e.originator_id, e.timestamp, last_period=e.period)
        self.view.payout_started((e.order_id, e.period, e.amount, e.currency, e.timestamp,
                                  e.originator_id))
