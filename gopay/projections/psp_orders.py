"""The PSP's side of the ledger: every top-up, payout, chargeback and PSP refund, as the PSP
should report it in its settlement files (and the payout report finance reconciles with).

The fee a row holds is what GoPay booked as the PSP's: the difference between the clearing
account's posting when the order succeeded and the one it planned (a chargeback plans none:
its clearing posting is the amount plus the PSP's fee).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row

from gopay.aggregates.ledger import SystemAccount, TransactionType
from gopay.aggregates.money import CURRENCIES
from gopay.aggregates.payment_order import PaymentOrder
from gopay.projections.view import PagedView
from gopay.reconcile.matching import ExpectedOrder

CLEARING_ACCOUNTS = frozenset(
    str(account.account_id(currency))
    for account in (SystemAccount.PSP_CLEARING, SystemAccount.PAYOUT_CLEARING)
    for currency in CURRENCIES)
# Orders the PSP has (or should have) heard of: not those it refused, nor refunds GoPay made
# between wallets without it.
KNOWN_TO_PSP = ("NOT (status = 'failed' AND psp_reference IS NULL) "
                "AND (kind <> 'refund' OR psp_reference IS NOT NULL)")
# In one query, in the order of their ids (the uuids', not their text's: a page at a time
# sorted the days' orders again as text for every page).
ORDER_IDS_OF_DAYS = (
    f"SELECT order_id::text FROM psp_orders WHERE day = ANY(%s::date[]) AND {KNOWN_TO_PSP} "
    "ORDER BY order_id")
# Ids made into Python strings at a time (libpq holds the rows, a few dozen bytes each).
ORDER_IDS_AT_A_TIME = 50_000
EXPECTED = (
    "SELECT order_id::text, kind, amount, currency, psp_fee, status, psp_reference, "
    "NULL::timestamptz, topup_id::text FROM psp_orders "
    "WHERE order_id = ANY(string_to_array(%s, ',')::uuid[])")
EXPECTED_WITH_CREATED_AT = EXPECTED.replace("NULL::timestamptz", "created_at")
TOTALS_OF_DAYS = (
    "SELECT kind, status, currency, count(*)::bigint AS count, sum(amount)::bigint AS amount, "
    f"sum(psp_fee)::bigint AS fee FROM psp_orders WHERE day = ANY(%s::date[]) AND {KNOWN_TO_PSP} "
    "GROUP BY kind, status, currency ORDER BY kind, status, currency")


class PspOrderView(PagedView):
    """One row per order that goes through the PSP, with what GoPay booked for it."""

    tables = ("psp_orders",)
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS psp_orders (
            order_id uuid PRIMARY KEY, kind text NOT NULL, wallet_id uuid, topup_id uuid,
            amount bigint NOT NULL, currency text NOT NULL, status text NOT NULL,
            psp_reference text, planned_clearing bigint, psp_fee bigint NOT NULL DEFAULT 0,
            day date NOT NULL, created_at timestamptz NOT NULL, settled_at timestamptz)""",
        """CREATE INDEX IF NOT EXISTS psp_orders_day_idx ON psp_orders (day, order_id)""",
        """CREATE INDEX IF NOT EXISTS psp_orders_kind_day_idx ON psp_orders (kind, day, created_at)""",
    )

    def start_page(self) -> None:
        self._created: list[tuple[Any, ...]] = []
        self._changed: list[dict[str, Any]] = []

    def order_created(self, order_id: UUID, kind: str, wallet_id: UUID | None,
                      topup_id: UUID | None, amount: int, currency: str, at: datetime) -> None:
        self._created.append((order_id, kind, wallet_id, topup_id, amount, currency, "created",
                              at.date(), at))

    def order_changed(self, order_id: UUID, *, status: str | None = None,
                      psp_reference: str | None = None, planned_clearing: int | None = None,
                      clearing: int | None = None, settled_at: datetime | None = None) -> None:
        self._changed.append({"order_id": order_id, "status": status,
                              "psp_reference": psp_reference, "planned": planned_clearing,
                              "clearing": clearing, "settled_at": settled_at})

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        if self._created:
            cursor.executemany(
                "INSERT INTO psp_orders (order_id, kind, wallet_id, topup_id, amount, currency, "
                "status, day, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                self._created)
        if self._changed:  # in log order: a fee is worked out from the plan recorded before it
            cursor.executemany(
                "UPDATE psp_orders SET status = COALESCE(%(status)s, status), "
                "psp_reference = COALESCE(psp_reference, %(psp_reference)s), "
                "planned_clearing = COALESCE(%(planned)s, planned_clearing), "
                "psp_fee = CASE WHEN %(clearing)s::bigint IS NULL THEN psp_fee "
                "ELSE %(clearing)s::bigint - COALESCE(planned_clearing, amount) END, "
                "settled_at = COALESCE(%(settled_at)s, settled_at) WHERE order_id = %(order_id)s",
                self._changed)

    # Queries: the ledger as matching reads it (gopay.reconcile.matching.Ledger)

    def expected(self, order_ids: Sequence[str], *,
                 created_at: bool = False) -> Mapping[str, ExpectedOrder]:
        # Thousands of ids at a time: sent as one text (an array of strings costs a few
        # microseconds each to send), read as plain tuples. A timestamptz costs PostgreSQL
        # and psycopg more to write and read than the rest of the row: only when asked for.
        with self.datastore.transaction(commit=False) as cursor:
            rows = cursor.connection.cursor(row_factory=tuple_row).execute(
                EXPECTED_WITH_CREATED_AT if created_at else EXPECTED,
                (",".join(order_ids),)).fetchall()
        return {row[0]: ExpectedOrder._make(row) for row in rows}

    def order_ids_of(self, days: Sequence[str]) -> Iterator[str]:
        with self.datastore.transaction(commit=False) as cursor:
            ids = cursor.connection.cursor(row_factory=tuple_row).execute(
                ORDER_IDS_OF_DAYS, (list(days),))
            while rows := ids.fetchmany(ORDER_IDS_AT_A_TIME):
                yield from (order_id for (order_id,) in rows)

    def totals(self, days: Sequence[str]) -> list[dict[str, Any]]:
        return self.query(TOTALS_OF_DAYS, (list(days),))

    # Queries: the payout report

    def payouts(self, day: date, *, limit: int, after: UUID | None = None) -> list[dict[str, Any]]:
        """The day's payouts, newest first, a merchant's scheduled ones with the merchant and
        the period; `after` is the last id of the page before."""
        return self.query(
            "SELECT p.*, s.merchant_id, s.period AS schedule_period FROM psp_orders p "
            "LEFT JOIN scheduled_payouts s ON s.order_id = p.order_id "  # gopay.projections.payout_schedules
            "WHERE p.kind = 'payout' AND p.day = %(day)s AND (%(after)s::uuid IS NULL OR "
            "(p.created_at, p.order_id) < (SELECT created_at, order_id FROM psp_orders "
            "WHERE order_id = %(after)s)) ORDER BY p.created_at DESC, p.order_id DESC "
            "LIMIT %(limit)s", {"day": day, "after": after, "limit": limit})


def _clearing(postings: Sequence[Mapping[str, Any]]) -> int | None:
    """What an entry posts to the PSP clearing accounts, or None if it does not touch them."""
    touched = [posting["amount"] for posting in postings
               if posting["account_id"] in CLEARING_ACCOUNTS]
    return sum(touched) if touched else None


class PspOrderProjection(Projection[PspOrderView]):
    """Turns payment-order events into the PSP's side of the ledger."""

    name = "psp_order_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events this read model does not show."""

    @process_event.register
    def _(self, e: PaymentOrder.Created, tracking: Tracking) -> None:
        if e.order_type == TransactionType.TOPUP:
            if e.payer_wallet_id is None:
                self.view.order_created(e.originator_id, "charge", e.payee_wallet_id, None,
                                        e.amount, e.currency, e.timestamp)
            else:  # a chargeback takes a top-up back from the wallet it credited
                self.view.order_created(e.originator_id, "chargeback", e.payer_wallet_id,
                                        e.initiated_by, e.amount, e.currency, e.timestamp)
        elif e.order_type in (TransactionType.PAYOUT, TransactionType.REFUND):
            self.view.order_created(e.originator_id, str(e.order_type), e.payer_wallet_id, None,
                                    e.amount, e.currency, e.timestamp)

    @process_event.register
    def _(self, e: PaymentOrder.Planned, tracking: Tracking) -> None:
        planned = _clearing(e.postings)
        if planned is not None:
            self.view.order_changed(e.originator_id, status="pending", planned_clearing=planned)

    @process_event.register
    def _(self, e: PaymentOrder.PspReferenceNoted, tracking: Tracking) -> None:
        self.view.order_changed(e.originator_id, psp_reference=e.psp_reference)

    @process_event.register
    def _(self, e: PaymentOrder.MarkedPending, tracking: Tracking) -> None:
        self.view.order_changed(e.originator_id, status="pending", psp_reference=e.psp_reference)

    @process_event.register
    def _(self, e: PaymentOrder.Succeeded, tracking: Tracking) -> None:
        clearing = _clearing(e.postings)
        if clearing is not None:  # every other order (a transfer, say) is none of the PSP's
            self.view.order_changed(e.originator_id, status="succeeded", clearing=clearing,
                                    settled_at=e.timestamp)

    @process_event.register
    def _(self, e: PaymentOrder.Failed, tracking: Tracking) -> None:
        self.view.order_changed(e.originator_id, status="failed", settled_at=e.timestamp)

    @process_event.register
    def _(self, e: PaymentOrder.Reversed, tracking: Tracking) -> None:
        if _clearing(e.postings) is not None:
            self.view.order_changed(e.originator_id, status="reversed")
