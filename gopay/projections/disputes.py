"""Disputes as customers, payees and staff read them: one row each, with its evidence."""

from __future__ import annotations

from datetime import datetime
from typing import Any, LiteralString
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from gopay.aggregates.dispute import Dispute
from gopay.projections.view import PagedView

_OPENED: LiteralString = (
    "INSERT INTO disputes (id, kind, transaction_id, order_id, customer_wallet_id, "
    "merchant_wallet_id, amount, currency, covered, reason, status, created_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'open', %s) ON CONFLICT DO NOTHING")
_EVIDENCE_ADDED: LiteralString = "UPDATE disputes SET evidence = evidence || %s WHERE id = %s"
_DECIDED: LiteralString = ("UPDATE disputes SET status = %s, outcome = %s, decided_by = %s, "
                           "decided_at = %s WHERE id = %s")


class DisputeView(PagedView):
    """One row per dispute, newest first, found by customer, payee or status."""

    tables = ("disputes",)
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS disputes (
            id uuid PRIMARY KEY, kind text NOT NULL, transaction_id uuid NOT NULL,
            order_id uuid NOT NULL, customer_wallet_id uuid NOT NULL, merchant_wallet_id uuid,
            amount bigint NOT NULL, currency text NOT NULL, covered bigint NOT NULL,
            reason text NOT NULL, status text NOT NULL, outcome text, decided_by uuid,
            evidence jsonb NOT NULL DEFAULT '[]', created_at timestamptz NOT NULL,
            decided_at timestamptz)""",
        """CREATE INDEX IF NOT EXISTS disputes_customer_idx
            ON disputes (customer_wallet_id, created_at, id)""",
        """CREATE INDEX IF NOT EXISTS disputes_merchant_idx
            ON disputes (merchant_wallet_id, created_at, id)""",
        """CREATE INDEX IF NOT EXISTS disputes_status_idx ON disputes (status, created_at, id)""",
    )

    def start_page(self) -> None:
        # In log order, one statement each: a dispute opened and decided in one page (a
        # chargeback's) must be inserted before it is updated.
        self._changes: list[tuple[LiteralString, tuple[Any, ...]]] = []

    def opened(self, e: Dispute.Opened) -> None:
        self._changes.append((_OPENED, (
            e.originator_id, e.kind, e.payment_id, e.order_id, e.customer_wallet_id,
            e.merchant_wallet_id, e.amount, e.currency, e.covered, e.reason, e.timestamp)))

    def evidence_added(self, dispute_id: UUID, by: UUID, text: str, at: str) -> None:
        evidence = Jsonb([{"by": str(by), "text": text, "at": at}])
        self._changes.append((_EVIDENCE_ADDED, (evidence, dispute_id)))

    def decided(self, dispute_id: UUID, status: str, outcome: str, by: UUID | None,
                at: datetime) -> None:
        self._changes.append((_DECIDED, (status, outcome, by, at, dispute_id)))

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        for statement, params in self._changes:
            cursor.execute(statement, params)

    def dispute(self, dispute_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM disputes WHERE id = %s", (dispute_id,))
        return rows[0] if rows else None

    def disputes(self, *, customer: UUID | None = None, merchant: UUID | None = None,
                 status: str | None = None, limit: int,
                 after: UUID | None = None) -> list[dict[str, Any]]:
        """Newest first, of one customer, one payee, or everyone's (staff); of one status or
        all; `after` is the last id of the page before."""
        return self.query(
            "SELECT * FROM disputes WHERE (%(customer)s::uuid IS NULL OR customer_wallet_id = "
            "%(customer)s) AND (%(merchant)s::uuid IS NULL OR merchant_wallet_id = %(merchant)s) "
            "AND (%(status)s::text IS NULL OR status = %(status)s) "
            "AND (%(after)s::uuid IS NULL OR (created_at, id) < "
            "(SELECT created_at, id FROM disputes WHERE id = %(after)s)) "
            "ORDER BY created_at DESC, id DESC LIMIT %(limit)s",
            {"customer": customer, "merchant": merchant, "status": status, "after": after,
             "limit": limit})


class DisputeProjection(Projection[DisputeView]):
    """Turns disputes' events into the disputes read model."""

    name = "dispute_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events this read model does not show."""

    @process_event.register
    def _(self, e: Dispute.Opened, tracking: Tracking) -> None:
        self.view.opened(e)

    @process_event.register
    def _(self, e: Dispute.EvidenceAdded, tracking: Tracking) -> None:
        self.view.evidence_added(e.originator_id, e.by, e.text, e.at)

    @process_event.register
    def _(self, e: Dispute.Decided, tracking: Tracking) -> None:
        self.view.decided(e.originator_id, e.status, e.outcome, e.by, e.timestamp)
