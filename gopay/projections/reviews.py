"""The fraud review queue: payments held for review, with their reasons and the decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from gopay.aggregates.fraud import Review
from gopay.projections.view import PagedView


class ReviewView(PagedView):
    """One row per held payment, newest first, open ones found by status."""

    tables = ("fraud_reviews",)
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS fraud_reviews (
            id uuid PRIMARY KEY, order_id uuid NOT NULL, sender_wallet_id uuid NOT NULL,
            amount bigint NOT NULL, currency text NOT NULL, score integer NOT NULL,
            reasons jsonb NOT NULL, sender_activity jsonb NOT NULL, status text NOT NULL,
            decided_by uuid, note text NOT NULL DEFAULT '', created_at timestamptz NOT NULL,
            decided_at timestamptz)""",
        """CREATE INDEX IF NOT EXISTS fraud_reviews_status_idx
            ON fraud_reviews (status, created_at, id)""",
    )

    def start_page(self) -> None:
        self._opened: list[tuple[Any, ...]] = []
        self._decided: list[tuple[Any, ...]] = []

    def opened(self, e: Review.Opened) -> None:
        self._opened.append((e.originator_id, e.order_id, e.sender_wallet_id, e.amount,
                             e.currency, e.score, Jsonb(list(e.reasons)),
                             Jsonb(dict(e.sender_activity)), e.timestamp))

    def decided(self, review_id: UUID, status: str, by: UUID, note: str, at: datetime) -> None:
        self._decided.append((status, by, note, at, review_id))

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        if self._opened:
            cursor.executemany(
                "INSERT INTO fraud_reviews (id, order_id, sender_wallet_id, amount, currency, "
                "score, reasons, sender_activity, status, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'open', %s) ON CONFLICT DO NOTHING",
                self._opened)
        if self._decided:
            cursor.executemany(
                "UPDATE fraud_reviews SET status = %s, decided_by = %s, note = %s, "
                "decided_at = %s WHERE id = %s", self._decided)

    def reviews(self, *, status: str | None, limit: int,
                after: UUID | None = None) -> list[dict[str, Any]]:
        """Newest first, of one status or all; `after` is the last id of the page before."""
        return self.query(
            "SELECT * FROM fraud_reviews WHERE (%(status)s::text IS NULL OR status = %(status)s) "
            "AND (%(after)s::uuid IS NULL OR (created_at, id) < "
            "(SELECT created_at, id FROM fraud_reviews WHERE id = %(after)s)) "
            "ORDER BY created_at DESC, id DESC LIMIT %(limit)s",
            {"status": status, "after": after, "limit": limit})


class ReviewProjection(Projection[ReviewView]):
    """Turns reviews' events into the review queue."""

    name = "review_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events this read model does not show."""

    @process_event.register
    def _(self, e: Review.Opened, tracking: Tracking) -> None:
        self.view.opened(e)

    @process_event.register
    def _(self, e: Review.Approved, tracking: Tracking) -> None:
        self.view.decided(e.originator_id, "approved", e.by, e.note, e.timestamp)

    @process_event.register
    def _(self, e: Review.Rejected, tracking: Tracking) -> None:
        self.view.decided(e.originator_id, "rejected", e.by, e.note, e.timestamp)
