"""The payment-methods read model: each customer's saved methods, masked, newest first."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow

from gopay.aggregates.errors import ValidationFailed
from gopay.aggregates.payment_method import PaymentMethod
from gopay.projections.view import PagedView

END = 2**63 - 1  # past every position


class PaymentMethodView(PagedView):
    """Saved methods as their owners may see them: masked details, never a number."""

    tables = ("payment_methods",)
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS payment_methods (
            position bigint NOT NULL, id uuid PRIMARY KEY, owner_id uuid NOT NULL,
            type text NOT NULL, details jsonb NOT NULL, holder_name text,
            created_at timestamptz NOT NULL, removed boolean NOT NULL DEFAULT false)""",
        """CREATE INDEX IF NOT EXISTS payment_methods_owner_idx
            ON payment_methods (owner_id, position)""",
    )

    def start_page(self) -> None:
        self._added: list[tuple[Any, ...]] = []
        self._removed: list[tuple[UUID]] = []

    def method_added(self, position: int, method_id: UUID, owner_id: UUID, method_type: str,
                     details: dict[str, Any], holder_name: str | None, at: datetime) -> None:
        self._added.append((position, method_id, owner_id, method_type, json.dumps(details),
                            holder_name, at))

    def method_removed(self, method_id: UUID) -> None:
        self._removed.append((method_id,))

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        if self._added:
            cursor.executemany(
                "INSERT INTO payment_methods (position, id, owner_id, type, details, "
                "holder_name, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)", self._added)
        if self._removed:
            cursor.executemany("UPDATE payment_methods SET removed = true WHERE id = %s",
                               self._removed)

    def method(self, owner_id: UUID, method_id: UUID) -> dict[str, Any] | None:
        """The owner's method in use; anyone else's, or a removed one, is not there."""
        rows = self.query("SELECT * FROM payment_methods WHERE id = %s AND owner_id = %s "
                          "AND NOT removed", (method_id, owner_id))
        return rows[0] if rows else None

    def methods(self, owner_id: UUID, *, limit: int,
                after: UUID | None = None) -> list[dict[str, Any]]:
        """The owner's methods in use, newest first; `after` is the last id of the page before."""
        before = END
        if after is not None:
            cursor = self.query("SELECT position FROM payment_methods "
                                "WHERE id = %s AND owner_id = %s", (after, owner_id))
            if not cursor:
                raise ValidationFailed("cursor is not valid")
            before = cursor[0]["position"]
        return self.query("SELECT * FROM payment_methods WHERE owner_id = %s AND NOT removed "
                          "AND position < %s ORDER BY position DESC LIMIT %s",
                          (owner_id, before, limit))


class PaymentMethodProjection(Projection[PaymentMethodView]):
    """Turns payment-method events into the payment-methods view."""

    name = "payment_method_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events this view does not show."""

    @process_event.register
    def _(self, e: PaymentMethod.Added, tracking: Tracking) -> None:
        self.view.method_added(tracking.notification_id, e.originator_id, e.owner_id,
                               e.method_type, dict(e.details), e.holder_name, e.timestamp)

    @process_event.register
    def _(self, e: PaymentMethod.Removed, tracking: Tracking) -> None:
        self.view.method_removed(e.originator_id)
