"""Merchant webhooks as a process on the log: each event a merchant should hear of becomes deliveries.

The projection reads the log like every read model and turns an event into zero or more
*happenings* (`payment.succeeded` when a merchant's wallet is credited by a QR payment,
`refund.succeeded` when a refund is counted, `dispute.opened` when a payer disputes a
payment the wallet received, `payout.paid` or `payout.failed` when the PSP
settles a payout out of the wallet), each addressed to a wallet. Every endpoint of
that wallet's owner subscribed to the happening's type gets one delivery row, written in the
runner's page transaction with the view's tracking position: a crash resumes after the last
committed page, and no event is turned into deliveries twice.

The delivery rows are a record of work, not a disposable read model: rebuilding the view (or
a new `version`) empties and replays only the endpoints. Replaying finds every delivery it
would make already there (keyed by event and endpoint), so nothing is ever sent again as a
new delivery. The sending itself is `gopay.processes.merchant_webhooks`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow

from gopay.aggregates.dispute import Dispute
from gopay.aggregates.ledger import LEDGER_NAMESPACE, SystemAccount, TransactionType
from gopay.aggregates.money import CURRENCIES
from gopay.aggregates.payment_order import PaymentOrder
from gopay.aggregates.refunds import PaymentRefunds
from gopay.aggregates.wallet import Wallet
from gopay.aggregates.webhook_endpoint import WebhookEndpoint
from gopay.projections.view import PagedView


@dataclass(frozen=True)
class Happening:
    """One event of the log, as the API tells it to whoever follows the wallet it concerns."""

    event_id: str  # the same in every delivery and every attempt of it
    type: str
    wallet_id: UUID
    created_at: datetime
    data: Mapping[str, Any]

    def body(self) -> str:
        """The exact text every attempt sends (and signs)."""
        return json.dumps({"id": self.event_id, "type": self.type,
                           "created_at": _rfc3339(self.created_at), "data": dict(self.data)},
                          separators=(",", ":"))


def event_id(domain_event: Any) -> str:
    """A stable id for a stored event: the same on every replay of the log."""
    name = f"{domain_event.originator_id}/{domain_event.originator_version}"
    return f"evt_{uuid5(LEDGER_NAMESPACE, name).hex}"


class WebhookDeliveryView(PagedView):
    """Merchants' endpoints, and every delivery to them with each attempt."""

    # The deliveries and attempts are kept: see the module docstring. `webhook_payouts` holds
    # each payout in flight (its wallet and amount) until the PSP settles it.
    tables = ("webhook_endpoints", "webhook_payouts")
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS webhook_endpoints (
            id uuid PRIMARY KEY, owner_id uuid NOT NULL, wallet_id uuid NOT NULL,
            url text NOT NULL, events text[] NOT NULL, created_position bigint NOT NULL,
            removed_position bigint, created_at timestamptz NOT NULL)""",
        """CREATE INDEX IF NOT EXISTS webhook_endpoints_wallet_idx ON webhook_endpoints (wallet_id)""",
        """CREATE INDEX IF NOT EXISTS webhook_endpoints_owner_idx
            ON webhook_endpoints (owner_id, created_at)""",
        """CREATE TABLE IF NOT EXISTS webhook_deliveries (
            event_id text NOT NULL, endpoint_id uuid NOT NULL,
            id uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(), event_type text NOT NULL,
            body text NOT NULL, status text NOT NULL DEFAULT 'pending',
            attempts integer NOT NULL DEFAULT 0, next_attempt_at timestamptz NOT NULL,
            created_at timestamptz NOT NULL, last_attempt_at timestamptz,
            last_status_code integer, last_error text,
            PRIMARY KEY (event_id, endpoint_id))""",
        """CREATE INDEX IF NOT EXISTS webhook_deliveries_due_idx ON webhook_deliveries
            (next_attempt_at) WHERE status = 'pending'""",
        """CREATE INDEX IF NOT EXISTS webhook_deliveries_endpoint_idx ON webhook_deliveries
            (endpoint_id, created_at DESC, id DESC)""",
        """CREATE TABLE IF NOT EXISTS webhook_payouts (
            order_id uuid PRIMARY KEY, wallet_id uuid NOT NULL, amount bigint NOT NULL,
            currency text NOT NULL, reference text NOT NULL, planned boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS webhook_attempts (
            delivery_id uuid NOT NULL, number integer NOT NULL,
            attempted_at timestamptz NOT NULL, status_code integer, error text,
            duration_ms integer NOT NULL, PRIMARY KEY (delivery_id, number))""",
    )

    def start_page(self) -> None:
        self._endpoints: list[tuple[Any, ...]] = []
        self._removed: list[tuple[Any, ...]] = []
        self._happenings: list[dict[str, Any]] = []
        self._payouts: list[tuple[Any, ...]] = []
        self._payouts_planned: list[tuple[UUID]] = []
        self._payouts_settled: list[tuple[str, UUID, str, datetime, str | None, int]] = []

    def endpoint_created(self, row: tuple[Any, ...]) -> None:
        self._endpoints.append(row)

    def endpoint_removed(self, endpoint_id: UUID, position: int) -> None:
        self._removed.append((position, endpoint_id))

    def happened(self, happening: Happening, position: int) -> None:
        self._happenings.append({
            "event_id": happening.event_id, "type": happening.type, "body": happening.body(),
            "wallet_id": happening.wallet_id, "at": happening.created_at, "position": position})

    def payout_created(self, order_id: UUID, wallet_id: UUID, amount: int, currency: str,
                       reference: str, at: datetime) -> None:
        self._payouts.append((order_id, wallet_id, amount, currency, reference, at))

    def payout_planned(self, order_id: UUID) -> None:
        """The order was accepted and its money held (any order: only a payout's row exists)."""
        self._payouts_planned.append((order_id,))

    def order_settled(self, event_id: str, order_id: UUID, status: str, at: datetime,
                      failure_reason: str | None, position: int) -> None:
        """An order succeeded or failed: if it is a payout in flight, its wallet hears of it."""
        self._payouts_settled.append((event_id, order_id, status, at, failure_reason, position))

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        self._write_payouts(cursor)
        if self._endpoints:
            cursor.executemany(
                "INSERT INTO webhook_endpoints (id, owner_id, wallet_id, url, events, "
                "created_position, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                self._endpoints)
        if self._removed:
            cursor.executemany("UPDATE webhook_endpoints SET removed_position = %s WHERE id = %s",
                               self._removed)
            cursor.executemany("UPDATE webhook_deliveries SET status = 'cancelled' "
                               "WHERE endpoint_id = %s AND status = 'pending'",
                               [(endpoint_id,) for _, endpoint_id in self._removed])
        if self._happenings:
            # Each happening goes to the endpoints subscribed to it when it happened (by log
            # position), so replaying the log later addresses it exactly as the first time.
            cursor.executemany(
                "INSERT INTO webhook_deliveries (event_id, endpoint_id, event_type, body, "
                "next_attempt_at, created_at) "
                "SELECT %(event_id)s, e.id, %(type)s, %(body)s, %(at)s, %(at)s "
                "FROM webhook_endpoints e WHERE e.wallet_id = %(wallet_id)s "
                "AND %(type)s = ANY(e.events) AND e.created_position < %(position)s "
                "AND (e.removed_position IS NULL OR e.removed_position > %(position)s) "
                "ON CONFLICT DO NOTHING", self._happenings)

    def _write_payouts(self, cursor: Cursor[DictRow]) -> None:
        """Payouts in flight kept; settled ones turned into happenings (a payout refused when
        it was asked for was never planned: its caller heard at once, no webhook is due)."""
        if self._payouts:
            cursor.executemany(
                "INSERT INTO webhook_payouts (order_id, wallet_id, amount, currency, reference, "
                "created_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", self._payouts)
        if self._payouts_planned:
            cursor.executemany("UPDATE webhook_payouts SET planned = true WHERE order_id = %s",
                               self._payouts_planned)
        if not self._payouts_settled:
            return
        cursor.execute("DELETE FROM webhook_payouts WHERE order_id = ANY(%s) RETURNING *",
                       ([settled[1] for settled in self._payouts_settled],))
        in_flight = {row["order_id"]: row for row in cursor.fetchall() if row["planned"]}
        for event_id_, order_id, status, at, reason, position in self._payouts_settled:
            row = in_flight.get(order_id)
            if row is None:
                continue
            paid = status == "succeeded"
            self.happened(Happening(event_id_, "payout.paid" if paid else "payout.failed",
                                    row["wallet_id"], at, {
                "object": "payout", "id": str(order_id), "status": "paid" if paid else "failed",
                "amount": row["amount"], "currency": row["currency"],
                "failure_reason": reason, "reference": row["reference"],
                "wallet_id": str(row["wallet_id"]), "created_at": _rfc3339(row["created_at"]),
                "settled_at": _rfc3339(at)}), position)

    # Queries

    def endpoints(self, owner_id: UUID) -> list[dict[str, Any]]:
        """A merchant's endpoints that were not removed, oldest first."""
        return self.query("SELECT * FROM webhook_endpoints WHERE owner_id = %s "
                          "AND removed_position IS NULL ORDER BY created_at, id", (owner_id,))

    def endpoint(self, endpoint_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM webhook_endpoints WHERE id = %s", (endpoint_id,))
        return rows[0] if rows else None

    def deliveries(self, endpoint_id: UUID, *, limit: int, after: UUID | None = None
                   ) -> list[dict[str, Any]]:
        """An endpoint's deliveries, newest first, each with its attempts oldest first."""
        return self.query(
            "SELECT d.*, COALESCE((SELECT json_agg(a ORDER BY a.number) FROM webhook_attempts a "
            "WHERE a.delivery_id = d.id), '[]') AS attempt_log FROM webhook_deliveries d "
            "WHERE d.endpoint_id = %(endpoint)s AND (%(after)s::uuid IS NULL OR (d.created_at, d.id) < "
            "(SELECT created_at, id FROM webhook_deliveries WHERE id = %(after)s)) "
            "ORDER BY d.created_at DESC, d.id DESC LIMIT %(limit)s",
            {"endpoint": endpoint_id, "after": after, "limit": limit})

    # The delivery job's work (`gopay.processes.merchant_webhooks`)

    def claim_due(self, now: datetime, until: datetime, limit: int) -> list[dict[str, Any]]:
        """Pending deliveries due by `now`, each claimed until `until`: no other process (or
        later run) takes one before then, and one whose sender died is taken up after."""
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "UPDATE webhook_deliveries d SET next_attempt_at = %(until)s "
                "FROM webhook_endpoints e WHERE e.id = d.endpoint_id AND d.id IN ("
                "  SELECT id FROM webhook_deliveries WHERE status = 'pending' "
                "  AND next_attempt_at <= %(now)s ORDER BY next_attempt_at "
                "  LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
                "RETURNING d.id, d.event_id, d.endpoint_id, d.body, d.attempts, d.created_at, e.url",
                {"now": now, "until": until, "limit": limit})
            return cursor.fetchall()

    def record_attempt(self, delivery_id: UUID, *, number: int, at: datetime,
                       status_code: int | None, error: str | None, duration_ms: int,
                       status: str, next_attempt_at: datetime) -> None:
        """One attempt and where it leaves the delivery, in one transaction."""
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "INSERT INTO webhook_attempts (delivery_id, number, attempted_at, status_code, "
                "error, duration_ms) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (delivery_id, number, at, status_code, error, duration_ms))
            cursor.execute(
                "UPDATE webhook_deliveries SET attempts = %s, status = %s, next_attempt_at = %s, "
                "last_attempt_at = %s, last_status_code = %s, last_error = %s "
                "WHERE id = %s AND status = 'pending'",
                (number, status, next_attempt_at, at, status_code, error, delivery_id))


class WebhookDeliveryProjection(Projection[WebhookDeliveryView]):
    """Turns merchants' endpoints and the events they subscribe to into deliveries."""

    name = "webhook_delivery_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events nobody is told about."""

    @process_event.register
    def _(self, e: WebhookEndpoint.Created, tracking: Tracking) -> None:
        self.view.endpoint_created((e.originator_id, e.owner_id, e.wallet_id, e.url,
                                    list(e.events), tracking.notification_id, e.timestamp))

    @process_event.register
    def _(self, e: WebhookEndpoint.Removed, tracking: Tracking) -> None:
        self.view.endpoint_removed(e.originator_id, tracking.notification_id)

    @process_event.register
    def _(self, e: Wallet.Credited, tracking: Tracking) -> None:
        if e.entry_type == TransactionType.QR_PAYMENT:
            self.view.happened(Happening(event_id(e), "payment.succeeded", e.originator_id,
                                         e.timestamp, {
                "object": "payment", "id": str(e.entry_id), "status": "succeeded",
                "amount": e.amount, "currency": e.currency, "reference": e.reference,
                "merchant_wallet_id": str(e.originator_id), "payer_wallet_id": e.counterparty,
                "created_at": _rfc3339(e.timestamp)}), tracking.notification_id)

    @process_event.register
    def _(self, e: PaymentRefunds.Refunded, tracking: Tracking) -> None:
        self.view.happened(Happening(event_id(e), "refund.succeeded", e.merchant_wallet_id,
                                     e.timestamp, {
            "object": "refund", "id": str(e.refund_id), "status": "succeeded",
            "payment_id": str(e.payment_id), "amount": e.amount, "currency": e.currency,
            "refunded_total": e.refunded_total, "merchant_wallet_id": str(e.merchant_wallet_id),
            "created_at": _rfc3339(e.timestamp)}), tracking.notification_id)

    @process_event.register
    def _(self, e: Dispute.Opened, tracking: Tracking) -> None:
        if e.merchant_wallet_id is not None:  # a chargeback's "merchant" is GoPay itself
            self.view.happened(Happening(event_id(e), "dispute.opened", e.merchant_wallet_id,
                                         e.timestamp, {
                "object": "dispute", "id": str(e.originator_id), "status": "open",
                "transaction_id": str(e.payment_id), "amount": e.amount, "currency": e.currency,
                "held": e.covered, "reason": e.reason,
                "merchant_wallet_id": str(e.merchant_wallet_id),
                "customer_wallet_id": str(e.customer_wallet_id),
                "created_at": _rfc3339(e.timestamp)}), tracking.notification_id)

    @process_event.register
    def _(self, e: PaymentOrder.Created, tracking: Tracking) -> None:
        if e.order_type == TransactionType.PAYOUT and e.payer_wallet_id is not None:
            self.view.payout_created(e.originator_id, e.payer_wallet_id, e.amount, e.currency,
                                     e.note, e.timestamp)

    @process_event.register
    def _(self, e: PaymentOrder.Planned, tracking: Tracking) -> None:
        if _pays_out(e.postings):
            self.view.payout_planned(e.originator_id)

    @process_event.register
    def _(self, e: PaymentOrder.Succeeded, tracking: Tracking) -> None:
        if _pays_out(e.postings):  # a transfer, say, is no payout: not looked up
            _settled(self, e, tracking)

    @process_event.register
    def _(self, e: PaymentOrder.Failed, tracking: Tracking) -> None:
        _settled(self, e, tracking)


PAYOUT_CLEARING_ACCOUNTS = frozenset(str(SystemAccount.PAYOUT_CLEARING.account_id(currency))
                                     for currency in CURRENCIES)


def _pays_out(postings: Sequence[Mapping[str, Any]]) -> bool:
    """Whether an entry moves money through the payout clearing account (a payout's does)."""
    return any(posting["account_id"] in PAYOUT_CLEARING_ACCOUNTS for posting in postings)


def _settled(projection: WebhookDeliveryProjection, e: PaymentOrder.Succeeded | PaymentOrder.Failed,
             tracking: Tracking) -> None:
    projection.view.order_settled(event_id(e), e.originator_id,
                                  "succeeded" if isinstance(e, PaymentOrder.Succeeded) else "failed",
                                  e.timestamp, getattr(e, "reason", None), tracking.notification_id)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
