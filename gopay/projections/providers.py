"""The providers read model: the billers and mobile operators customers can pay, newest first."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow

from gopay.aggregates.biller import Biller
from gopay.aggregates.mobile_operator import MobileOperator
from gopay.projections.view import PagedView

END = 2**63 - 1  # past every position


class ProviderView(PagedView):
    """Billers (with the bank account they are settled to, masked) and mobile operators."""

    tables = ("billers", "mobile_operators")
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS billers (
            position bigint NOT NULL, id uuid PRIMARY KEY, name text NOT NULL,
            category text NOT NULL, currency text NOT NULL, wallet_id uuid NOT NULL UNIQUE,
            bank_account text NOT NULL DEFAULT '', created_at timestamptz NOT NULL)""",
        """CREATE INDEX IF NOT EXISTS billers_position_idx ON billers (position)""",
        """CREATE TABLE IF NOT EXISTS mobile_operators (
            position bigint NOT NULL, id uuid PRIMARY KEY, name text NOT NULL,
            country text NOT NULL, currency text NOT NULL, wallet_id uuid NOT NULL UNIQUE,
            created_at timestamptz NOT NULL)""",
        """CREATE INDEX IF NOT EXISTS mobile_operators_position_idx
            ON mobile_operators (position)""",
    )

    def start_page(self) -> None:
        self._billers: list[tuple[Any, ...]] = []
        self._bank_accounts: list[tuple[str, UUID]] = []
        self._operators: list[tuple[Any, ...]] = []

    def biller_created(self, row: tuple[Any, ...]) -> None:
        self._billers.append(row)

    def biller_bank_account_set(self, biller_id: UUID, shown: str) -> None:
        self._bank_accounts.append((shown, biller_id))

    def operator_added(self, row: tuple[Any, ...]) -> None:
        self._operators.append(row)

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        if self._billers:
            cursor.executemany(
                "INSERT INTO billers (position, id, name, category, currency, wallet_id, "
                "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)", self._billers)
        if self._bank_accounts:
            cursor.executemany("UPDATE billers SET bank_account = %s WHERE id = %s",
                               self._bank_accounts)
        if self._operators:
            cursor.executemany(
                "INSERT INTO mobile_operators (position, id, name, country, currency, "
                "wallet_id, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)", self._operators)

    # Queries

    def billers(self, q: str | None, *, limit: int, after: UUID | None = None) -> list[dict[str, Any]]:
        """Billers whose name or category contains `q`, newest first; `after` is the last id
        of the page before."""
        pattern = f"%{_escaped(q)}%" if q else "%"
        before = self._position_of("billers", after)
        return self.query("SELECT * FROM billers WHERE (name ILIKE %s OR category ILIKE %s) "
                          "AND position < %s ORDER BY position DESC LIMIT %s",
                          (pattern, pattern, before, limit))

    def operators(self, country: str | None, *, limit: int,
                  after: UUID | None = None) -> list[dict[str, Any]]:
        """Operators (of `country`, if given), newest first."""
        before = self._position_of("mobile_operators", after)
        return self.query("SELECT * FROM mobile_operators WHERE (%s::text IS NULL OR country = %s) "
                          "AND position < %s ORDER BY position DESC LIMIT %s",
                          (country, country, before, limit))

    def biller(self, biller_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM billers WHERE id = %s", (biller_id,))
        return rows[0] if rows else None

    def biller_of_wallet(self, wallet_id: UUID) -> dict[str, Any] | None:
        """The biller whose payable account this wallet is."""
        rows = self.query("SELECT * FROM billers WHERE wallet_id = %s", (wallet_id,))
        return rows[0] if rows else None

    def operator(self, operator_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM mobile_operators WHERE id = %s", (operator_id,))
        return rows[0] if rows else None

    def operator_of_wallet(self, wallet_id: UUID) -> dict[str, Any] | None:
        """The operator whose payable account this wallet is."""
        rows = self.query("SELECT * FROM mobile_operators WHERE wallet_id = %s", (wallet_id,))
        return rows[0] if rows else None

    def _position_of(self, table: str, after: UUID | None) -> int:
        """Where a page that follows the row `after` starts: past every row without one, before
        every row when `after` names none (an empty page, as other lists answer it)."""
        if after is None:
            return END
        statement = {"billers": "SELECT position FROM billers WHERE id = %s",
                     "mobile_operators": "SELECT position FROM mobile_operators WHERE id = %s"}
        found = self.query(statement[table], (after,))
        return int(found[0]["position"]) if found else 0


def _escaped(text: str) -> str:
    """`text` matched literally by ILIKE: its own % and _ are not wildcards."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class ProviderProjection(Projection[ProviderView]):
    """Turns biller and operator events into the providers view."""

    name = "provider_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events this view does not show."""

    @process_event.register
    def _(self, e: Biller.Created, tracking: Tracking) -> None:
        self.view.biller_created((tracking.notification_id, e.originator_id, e.name, e.category,
                                  e.currency, e.wallet_id, e.timestamp))

    @process_event.register
    def _(self, e: Biller.BankAccountSet, tracking: Tracking) -> None:
        self.view.biller_bank_account_set(e.originator_id, e.shown)

    @process_event.register
    def _(self, e: MobileOperator.Created, tracking: Tracking) -> None:
        self.view.operator_added((tracking.notification_id, e.originator_id, e.name, e.country,
                                  e.currency, e.wallet_id, e.timestamp))

