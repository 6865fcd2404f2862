"""The maker-checker read model: adjustment proposals, those waiting for a checker first."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow

from gopay.aggregates.adjustment_proposal import AdjustmentProposal
from gopay.projections.view import PagedView


class AdjustmentProposalView(PagedView):
    """One row per proposal, with who proposed it and who decided it."""

    tables = ("adjustment_proposals",)
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS adjustment_proposals (
            id uuid PRIMARY KEY, status text NOT NULL, account text NOT NULL,
            counter_account text NOT NULL, direction text NOT NULL, amount bigint NOT NULL,
            currency text NOT NULL, reason text NOT NULL, proposed_by uuid NOT NULL,
            decided_by uuid, order_id uuid, rejection_reason text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL, decided_at timestamptz)""",
        """CREATE INDEX IF NOT EXISTS adjustment_proposals_status_idx
            ON adjustment_proposals (status, created_at, id)""",
    )

    def start_page(self) -> None:
        self._proposed: list[tuple[Any, ...]] = []
        self._decided: list[tuple[Any, ...]] = []

    def proposed(self, e: AdjustmentProposal.Proposed) -> None:
        self._proposed.append((e.originator_id, e.account, e.counter_account, e.direction,
                               e.amount, e.currency, e.reason, e.proposed_by, e.timestamp))

    def decided(self, proposal_id: UUID, status: str, by: UUID, at: datetime, *,
                order_id: UUID | None = None, reason: str = "") -> None:
        self._decided.append((status, by, order_id, reason, at, proposal_id))

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        if self._proposed:
            cursor.executemany(
                "INSERT INTO adjustment_proposals (id, status, account, counter_account, "
                "direction, amount, currency, reason, proposed_by, created_at) "
                "VALUES (%s, 'proposed', %s, %s, %s, %s, %s, %s, %s, %s)", self._proposed)
        if self._decided:
            cursor.executemany(
                "UPDATE adjustment_proposals SET status = %s, decided_by = %s, order_id = %s, "
                "rejection_reason = %s, decided_at = %s WHERE id = %s", self._decided)

    def proposal(self, proposal_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM adjustment_proposals WHERE id = %s", (proposal_id,))
        return rows[0] if rows else None

    def proposals(self, *, status: str | None, limit: int,
                  after: UUID | None = None) -> list[dict[str, Any]]:
        """Newest first, of one status or all; `after` is the last id of the page before."""
        return self.query(
            "SELECT * FROM adjustment_proposals WHERE (%(status)s::text IS NULL OR status = %(status)s) "
            "AND (%(after)s::uuid IS NULL OR (created_at, id) < "
            "(SELECT created_at, id FROM adjustment_proposals WHERE id = %(after)s)) "
            "ORDER BY created_at DESC, id DESC LIMIT %(limit)s",
            {"status": status, "after": after, "limit": limit})


class AdjustmentProposalProjection(Projection[AdjustmentProposalView]):
    """Turns proposals' events into the maker-checker read model."""

    name = "adjustment_proposal_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events this read model does not show."""

    @process_event.register
    def _(self, e: AdjustmentProposal.Proposed, tracking: Tracking) -> None:
        self.view.proposed(e)

    @process_event.register
    def _(self, e: AdjustmentProposal.Applied, tracking: Tracking) -> None:
        self.view.decided(e.originator_id, "applied", e.approved_by, e.timestamp,
                          order_id=e.order_id)

    @process_event.register
    def _(self, e: AdjustmentProposal.Rejected, tracking: Tracking) -> None:
        self.view.decided(e.originator_id, "rejected", e.rejected_by, e.timestamp,
                          reason=e.reason)
