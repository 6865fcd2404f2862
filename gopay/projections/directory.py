"""The directory read model: who is registered, for staff search and the list of companies."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from eventsourcing.utils import get_topic
from psycopg import Cursor
from psycopg.rows import DictRow

from gopay.aggregates.user import User
from gopay.projections.view import PagedView


class DirectoryView(PagedView):
    """One row per user; wallets' frozen flags stay in the wallet view."""

    tables = ("users",)
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS users (
            id uuid PRIMARY KEY, email text NOT NULL, kind text NOT NULL, role text,
            full_name text NOT NULL, phone text, country text, business_name text,
            category text, wallet_id uuid, kyc_status text NOT NULL,
            created_at timestamptz NOT NULL)""",
        """CREATE INDEX IF NOT EXISTS users_kind_idx ON users (kind)""",
    )

    def start_page(self) -> None:
        self._registered: list[tuple[Any, ...]] = []
        self._profiles: list[tuple[Any, ...]] = []

    def user_registered(self, row: tuple[Any, ...]) -> None:
        self._registered.append(row)

    def profile_changed(self, user_id: UUID, full_name: str, phone: str | None) -> None:
        self._profiles.append((full_name, phone, user_id))

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        if self._registered:
            cursor.executemany(
                "INSERT INTO users (id, email, kind, role, full_name, phone, country, "
                "business_name, category, wallet_id, kyc_status, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", self._registered)
        if self._profiles:
            cursor.executemany("UPDATE users SET full_name = %s, phone = %s WHERE id = %s",
                               self._profiles)

    def search(self, text: str | None, *, kinds: tuple[str, ...], limit: int,
               after: str | None = None) -> list[dict[str, Any]]:
        """Users of these kinds whose e-mail, name, business or phone contains `text`, newest first."""
        query = "SELECT * FROM users WHERE kind = ANY(%s)"
        params: list[Any] = [list(kinds)]
        if text:
            query += (" AND (email ILIKE %s OR full_name ILIKE %s OR business_name ILIKE %s"
                      " OR phone ILIKE %s)")
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params += [pattern] * 4
        if after:
            query += " AND (created_at, id) < (SELECT created_at, id FROM users WHERE id = %s)"
            params.append(after)
        query += " ORDER BY created_at DESC, id DESC LIMIT %s"
        params.append(limit)
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(query, params)
            return cursor.fetchall()


class DirectoryProjection(Projection[DirectoryView]):
    """Turns user events into the directory."""

    name = "directory_projection"
    # Only these are read from the log; transfers, the bulk of it, are not even decoded.
    topics = (get_topic(User.Registered), get_topic(User.ProfileChanged))

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events the directory does not show."""

    @process_event.register
    def _(self, e: User.Registered, tracking: Tracking) -> None:
        self.view.user_registered((e.originator_id, e.email, e.kind, e.role, e.full_name,
                                   e.phone, e.country, e.business_name, e.category,
                                   e.wallet_id, "unverified", e.timestamp))

    @process_event.register
    def _(self, e: User.ProfileChanged, tracking: Tracking) -> None:
        self.view.profile_changed(e.originator_id, e.full_name, e.phone)
