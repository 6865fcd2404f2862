"""The payment-requests read model: what each wallet asked for or was asked, and what is due to expire."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow

from gopay.aggregates.payment_request import PaymentRequest
from gopay.projections.view import PagedView

# A request nobody answered in time is `expired` from that moment on (its `status_now`),
# whether or not the scheduler has recorded it yet.
ONE = """SELECT *,
    CASE WHEN status = 'open' AND expires_at <= %(now)s THEN 'expired' ELSE status END AS status_now
    FROM payment_requests WHERE id = %(id)s"""
# Both directions, or one (`role`), with a status or any, newest first, after a cursor.
OF_WALLET = """SELECT * FROM (
    SELECT *,
        CASE WHEN status = 'open' AND expires_at <= %(now)s THEN 'expired' ELSE status END
        AS status_now
    FROM payment_requests
    WHERE (requester_wallet_id = %(wallet)s AND %(role)s::text IS DISTINCT FROM 'payer')
       OR (payer_wallet_id = %(wallet)s AND %(role)s::text IS DISTINCT FROM 'requester')) AS mine
    WHERE (%(status)s::text IS NULL OR status_now = %(status)s)
      AND (%(after)s::uuid IS NULL OR (created_at, id) <
           (SELECT created_at, id FROM payment_requests WHERE id = %(after)s))
    ORDER BY created_at DESC, id DESC LIMIT %(limit)s"""


class PaymentRequestView(PagedView):
    """One row per request, seen by its requester and its payer."""

    tables = ("payment_requests",)
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS payment_requests (
            id uuid PRIMARY KEY, requester_id uuid NOT NULL, requester_wallet_id uuid NOT NULL,
            payer_id uuid NOT NULL, payer_wallet_id uuid NOT NULL, amount bigint NOT NULL,
            currency text NOT NULL, note text NOT NULL, status text NOT NULL, order_id uuid,
            expires_at timestamptz NOT NULL, created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL)""",
        """CREATE INDEX IF NOT EXISTS payment_requests_requester_idx
            ON payment_requests (requester_wallet_id, created_at DESC, id DESC)""",
        """CREATE INDEX IF NOT EXISTS payment_requests_payer_idx
            ON payment_requests (payer_wallet_id, created_at DESC, id DESC)""",
        """CREATE INDEX IF NOT EXISTS payment_requests_open_idx ON payment_requests (expires_at)
            WHERE status = 'open'""",
    )

    def start_page(self) -> None:
        self._created: list[tuple[Any, ...]] = []
        self._changed: list[tuple[Any, ...]] = []

    def request_created(self, row: tuple[Any, ...]) -> None:
        self._created.append(row)

    def request_changed(self, request_id: UUID, status: str, at: datetime,
                        order_id: UUID | None = None) -> None:
        self._changed.append((status, order_id, at, request_id))

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        if self._created:
            cursor.executemany(
                "INSERT INTO payment_requests (id, requester_id, requester_wallet_id, payer_id, "
                "payer_wallet_id, amount, currency, note, status, expires_at, created_at, "
                "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'open', %s, %s, %s)",
                self._created)
        if self._changed:
            cursor.executemany(
                "UPDATE payment_requests SET status = %s, order_id = COALESCE(%s, order_id), "
                "updated_at = %s WHERE id = %s", self._changed)

    def request(self, request_id: UUID, now: datetime) -> dict[str, Any] | None:
        """The request, its `status_now` counting its time as it is at `now`."""
        rows = self.query(ONE, {"id": request_id, "now": now})
        return rows[0] if rows else None

    def of_wallet(self, wallet_id: UUID, now: datetime, *, limit: int, after: UUID | None = None,
                  role: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Requests the wallet made (`role` requester) or was sent (payer), newest first;
        `after` is the last id of the page before."""
        return self.query(OF_WALLET, {"wallet": wallet_id, "now": now, "role": role,
                                      "status": status, "after": after, "limit": limit})

    def due(self, now: datetime, limit: int) -> list[UUID]:
        """Open requests whose time is up, for the scheduler to record as expired."""
        rows = self.query("SELECT id FROM payment_requests WHERE status = 'open' AND "
                          "expires_at <= %s ORDER BY expires_at LIMIT %s", (now, limit))
        return [row["id"] for row in rows]


class PaymentRequestProjection(Projection[PaymentRequestView]):
    """Turns payment-request events into the payment-requests view."""

    name = "payment_request_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events this view does not show."""

    @process_event.register
    def _(self, e: PaymentRequest.Created, tracking: Tracking) -> None:
        self.view.request_created((e.originator_id, e.requester_id, e.requester_wallet_id,
                                   e.payer_id, e.payer_wallet_id, e.amount, e.currency, e.note,
                                   datetime.fromisoformat(e.expires_at), e.timestamp,
                                   e.timestamp))

    @process_event.register
    def _(self, e: PaymentRequest.Paid, tracking: Tracking) -> None:
        self.view.request_changed(e.originator_id, "paid", e.timestamp, e.order_id)

    @process_event.register
    def _(self, e: PaymentRequest.Declined, tracking: Tracking) -> None:
        self.view.request_changed(e.originator_id, "declined", e.timestamp)

    @process_event.register
    def _(self, e: PaymentRequest.Cancelled, tracking: Tracking) -> None:
        self.view.request_changed(e.originator_id, "cancelled", e.timestamp)

    @process_event.register
    def _(self, e: PaymentRequest.Expired, tracking: Tracking) -> None:
        self.view.request_changed(e.originator_id, "expired", e.timestamp)
