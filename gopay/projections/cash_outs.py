"""The cash-outs read model: each cash-out's state for its customer and agent, and which have expired."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow

from gopay.aggregates.cash_out import CashOut
from gopay.projections.view import PagedView


class CashOutView(PagedView):
    """One row per cash-out, by the id of its payment order (never with its code)."""

    tables = ("cash_outs",)
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS cash_outs (
            id uuid PRIMARY KEY, aggregate_id uuid NOT NULL UNIQUE,
            customer_wallet_id uuid NOT NULL, agent_id uuid NOT NULL,
            agent_wallet_id uuid NOT NULL, amount bigint NOT NULL, currency text NOT NULL,
            status text NOT NULL, reason text, wrong_codes integer NOT NULL DEFAULT 0,
            attempts_allowed integer NOT NULL, expires_at timestamptz NOT NULL,
            created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)""",
        """CREATE INDEX IF NOT EXISTS cash_outs_pending_idx ON cash_outs (expires_at)
            WHERE status = 'pending'""",
    )

    def start_page(self) -> None:
        self._created: list[tuple[Any, ...]] = []
        self._changed: list[tuple[Any, ...]] = []

    def cash_out_created(self, row: tuple[Any, ...]) -> None:
        self._created.append(row)

    def cash_out_changed(self, aggregate_id: UUID, at: datetime, *, status: str | None = None,
                         reason: str | None = None, wrong_code: bool = False) -> None:
        self._changed.append((status, reason, int(wrong_code), at, aggregate_id))

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        if self._created:
            cursor.executemany(
                "INSERT INTO cash_outs (id, aggregate_id, customer_wallet_id, agent_id, "
                "agent_wallet_id, amount, currency, status, attempts_allowed, expires_at, "
                "created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, 'pending', %s, %s, %s, %s)", self._created)
        if self._changed:
            cursor.executemany(
                "UPDATE cash_outs SET status = COALESCE(%s, status), "
                "reason = COALESCE(%s, reason), wrong_codes = wrong_codes + %s, updated_at = %s "
                "WHERE aggregate_id = %s", self._changed)

    def cash_out(self, order_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM cash_outs WHERE id = %s", (order_id,))
        return rows[0] if rows else None

    def expired(self, now: datetime, limit: int) -> list[UUID]:
        """Pending cash-outs whose code has expired, the longest expired first."""
        rows = self.query("SELECT id FROM cash_outs WHERE status = 'pending' AND expires_at <= %s "
                          "ORDER BY expires_at LIMIT %s", (now, limit))
        return [row["id"] for row in rows]


class CashOutProjection(Projection[CashOutView]):
    """Turns cash-out events into the cash-outs view."""

    name = "cash_out_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events this view does not show."""

    @process_event.register
    def _(self, e: CashOut.Created, tracking: Tracking) -> None:
        self.view.cash_out_created((e.order_id, e.originator_id, e.customer_wallet_id, e.agent_id,
                                    e.agent_wallet_id, e.amount, e.currency, e.attempts_allowed,
                                    datetime.fromisoformat(e.expires_at), e.timestamp,
                                    e.timestamp))

    @process_event.register
    def _(self, e: CashOut.WrongCodeEntered, tracking: Tracking) -> None:
        self.view.cash_out_changed(e.originator_id, e.timestamp, wrong_code=True)

    @process_event.register
    def _(self, e: CashOut.Confirmed, tracking: Tracking) -> None:
        self.view.cash_out_changed(e.originator_id, e.timestamp, status="succeeded")

    @process_event.register
    def _(self, e: CashOut.Ended, tracking: Tracking) -> None:
        self.view.cash_out_changed(e.originator_id, e.timestamp, status=e.status, reason=e.reason)
