"""The support read model: tickets by customer and by status, each with its messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any, LiteralString
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow

from gopay.aggregates.support_ticket import SupportTicket
from gopay.projections.view import PagedView

# A ticket with its transaction as the wallets view shows it now (that view's own table: this
# view is listed after it, and queries only read it).
TICKETS: LiteralString = """SELECT t.*, o.type AS transaction_type, o.status AS transaction_status,
        o.amount AS transaction_amount, o.currency AS transaction_currency
    FROM support_tickets t LEFT JOIN payment_orders o ON o.id = t.transaction_id"""
# Newest first, after the cursor (the last id of the page before).
PAGE: LiteralString = """
      AND (%(status)s::text IS NULL OR t.status = %(status)s)
      AND (%(after)s::uuid IS NULL OR (t.created_at, t.id) <
           (SELECT created_at, id FROM support_tickets WHERE id = %(after)s))
    ORDER BY t.created_at DESC, t.id DESC LIMIT %(limit)s"""


class SupportTicketView(PagedView):
    """One row per ticket and one per message."""

    tables = ("support_tickets", "support_messages")
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS support_tickets (
            id uuid PRIMARY KEY, customer_id uuid NOT NULL, customer_wallet_id uuid NOT NULL,
            subject text NOT NULL, transaction_id uuid, status text NOT NULL, assignee uuid,
            messages integer NOT NULL, created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL)""",
        """CREATE INDEX IF NOT EXISTS support_tickets_customer_idx
            ON support_tickets (customer_id, created_at DESC, id DESC)""",
        """CREATE INDEX IF NOT EXISTS support_tickets_status_idx
            ON support_tickets (status, created_at DESC, id DESC)""",
        """CREATE TABLE IF NOT EXISTS support_messages (
            id uuid PRIMARY KEY, ticket_id uuid NOT NULL, version integer NOT NULL,
            author text NOT NULL, staff_id uuid, body text NOT NULL,
            created_at timestamptz NOT NULL, UNIQUE (ticket_id, version))""",
    )

    def start_page(self) -> None:
        self._opened: list[tuple[Any, ...]] = []
        self._messages: list[tuple[Any, ...]] = []
        self._changed: list[tuple[Any, ...]] = []

    def ticket_opened(self, e: SupportTicket.Opened) -> None:
        self._opened.append((e.originator_id, e.customer_id, e.customer_wallet_id, e.subject,
                             e.transaction_id, e.timestamp, e.timestamp))

    def message_written(self, ticket_id: UUID, version: int, message_id: UUID, author: str,
                        staff_id: UUID | None, body: str, at: datetime) -> None:
        self._messages.append((message_id, ticket_id, version, author, staff_id, body, at))

    def ticket_changed(self, ticket_id: UUID, at: datetime, *, status: str | None = None,
                       assignee: UUID | None = None, message: bool = False) -> None:
        self._changed.append((status, assignee, int(message), at, ticket_id))

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        if self._opened:
            cursor.executemany(
                "INSERT INTO support_tickets (id, customer_id, customer_wallet_id, subject, "
                "transaction_id, status, messages, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, 'open', 0, %s, %s)", self._opened)
        if self._messages:
            cursor.executemany(
                "INSERT INTO support_messages (id, ticket_id, version, author, staff_id, body, "
                "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)", self._messages)
        if self._changed:  # in the order of their events
            cursor.executemany(
                "UPDATE support_tickets SET status = COALESCE(%s, status), "
                "assignee = COALESCE(%s, assignee), messages = messages + %s, "
                "updated_at = %s WHERE id = %s", self._changed)

    # Queries (the API's)

    def ticket(self, ticket_id: UUID) -> dict[str, Any] | None:
        rows = self.query(TICKETS + " WHERE t.id = %s", (ticket_id,))
        return rows[0] if rows else None

    def messages(self, ticket_id: UUID) -> list[dict[str, Any]]:
        """A ticket's messages, oldest first."""
        return self.query("SELECT * FROM support_messages WHERE ticket_id = %s ORDER BY version",
                          (ticket_id,))

    def of_customer(self, customer_id: UUID, *, status: str | None, limit: int,
                    after: UUID | None = None) -> list[dict[str, Any]]:
        """A customer's tickets, newest first."""
        return self.query(TICKETS + " WHERE t.customer_id = %(customer)s" + PAGE,
                          {"customer": customer_id, "status": status, "after": after,
                           "limit": limit})

    def tickets(self, *, status: str | None, limit: int, after: UUID | None = None,
                assignee: UUID | None = None) -> list[dict[str, Any]]:
        """Everyone's tickets, newest first, of one status (or all), for staff."""
        return self.query(TICKETS + " WHERE (%(assignee)s::uuid IS NULL OR t.assignee = "
                          "%(assignee)s)" + PAGE,
                          {"status": status, "assignee": assignee, "after": after,
                           "limit": limit})


class SupportTicketProjection(Projection[SupportTicketView]):
    """Turns tickets' events into the support view."""

    name = "support_ticket_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events this read model does not show."""

    @process_event.register
    def _(self, e: SupportTicket.Opened, tracking: Tracking) -> None:
        self.view.ticket_opened(e)
        self._message(e, e.message_id, "customer", None, e.body)

    @process_event.register
    def _(self, e: SupportTicket.CustomerWrote, tracking: Tracking) -> None:
        self._message(e, e.message_id, "customer", None, e.body, status="open")

    @process_event.register
    def _(self, e: SupportTicket.StaffReplied, tracking: Tracking) -> None:
        self._message(e, e.message_id, "staff", e.staff_id, e.body, status="pending")

    @process_event.register
    def _(self, e: SupportTicket.Assigned, tracking: Tracking) -> None:
        self.view.ticket_changed(e.originator_id, e.timestamp, assignee=e.staff_id)

    @process_event.register
    def _(self, e: SupportTicket.Closed, tracking: Tracking) -> None:
        self.view.ticket_changed(e.originator_id, e.timestamp, status="closed")

    def _message(self, e: Any, message_id: UUID, author: str, staff_id: UUID | None, body: str,
                 status: str | None = None) -> None:
        self.view.message_written(e.originator_id, e.originator_version, message_id, author,
                                  staff_id, body, e.timestamp)
        self.view.ticket_changed(e.originator_id, e.timestamp, status=status, message=True)
