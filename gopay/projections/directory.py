"""The directory read model: who is registered and how their account stands, for people and staff."""

from __future__ import annotations

from typing import Any, LiteralString
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.projections.view import PagedView

COLUMNS: tuple[LiteralString, ...] = (
    "id", "email", "kind", "role", "full_name", "phone", "country", "business_name",
    "category", "wallet_id", "kyc_status", "login_notifications", "two_factor_enabled",
    "frozen", "created_at")


class DirectoryView(PagedView):
    """One row per user, with their wallet's frozen flag."""

    version = 2
    tables = ("users",)
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS users (
            id uuid PRIMARY KEY, email text NOT NULL, kind text NOT NULL, role text,
            full_name text NOT NULL, phone text, country text, business_name text,
            category text, wallet_id uuid, kyc_status text NOT NULL,
            login_notifications boolean NOT NULL, two_factor_enabled boolean NOT NULL,
            frozen boolean NOT NULL, created_at timestamptz NOT NULL)""",
        """CREATE INDEX IF NOT EXISTS users_kind_idx ON users (kind)""",
        """CREATE INDEX IF NOT EXISTS users_wallet_idx ON users (wallet_id)""",
    )

    def start_page(self) -> None:
        self._registered: list[tuple[Any, ...]] = []
        self._users: dict[UUID, dict[str, Any]] = {}
        self._wallets: dict[UUID, dict[str, Any]] = {}

    def user_registered(self, row: tuple[Any, ...]) -> None:
        self._registered.append(row)

    def user_changed(self, user_id: UUID, **columns: Any) -> None:
        self._users.setdefault(user_id, {}).update(columns)

    def wallet_changed(self, wallet_id: UUID, **columns: Any) -> None:
        self._wallets.setdefault(wallet_id, {}).update(columns)

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        if self._registered:
            cursor.executemany(
                SQL("INSERT INTO users ({}) VALUES ({})").format(
                    SQL(", ").join(map(Identifier, COLUMNS)),
                    SQL(", ").join(SQL("%s") for _ in COLUMNS)), self._registered)
        for key, changes in (("id", self._users), ("wallet_id", self._wallets)):
            for row_id, columns in changes.items():
                cursor.execute(SQL("UPDATE users SET {} WHERE {} = %s").format(
                    SQL(", ").join(SQL("{} = %s").format(Identifier(c)) for c in columns),
                    Identifier(key)), (*columns.values(), row_id))

    def user(self, user_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM users WHERE id = %s", (user_id,))
        return rows[0] if rows else None

    def users(self, user_ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        """These users' rows by id, in one query (a page naming many people)."""
        rows = self.query("SELECT * FROM users WHERE id = ANY(%s)", (user_ids,))
        return {row["id"]: row for row in rows}

    def by_wallets(self, wallet_ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        """The owners of these wallets by wallet id, in one query."""
        rows = self.query("SELECT * FROM users WHERE wallet_id = ANY(%s)", (wallet_ids,))
        return {row["wallet_id"]: row for row in rows}

    def search(self, text: str | None, *, kinds: tuple[str, ...], limit: int,
               after: str | None = None) -> list[dict[str, Any]]:
        """Users of these kinds whose e-mail, name, business or phone contains `text`, newest first."""
        query: LiteralString = "SELECT * FROM users WHERE kind = ANY(%s)"
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
        return self.query(query, params)


class DirectoryProjection(Projection[DirectoryView]):
    """Turns user events (and wallets' freezes) into the directory."""

    name = "directory_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events the directory does not show."""

    @process_event.register
    def _(self, e: User.Registered, tracking: Tracking) -> None:
        self.view.user_registered((e.originator_id, e.email, e.kind, e.role, e.full_name,
                                   e.phone, e.country, e.business_name, e.category,
                                   e.wallet_id, "unverified", True, False, False, e.timestamp))

    @process_event.register
    def _(self, e: User.ProfileChanged, tracking: Tracking) -> None:
        self.view.user_changed(e.originator_id, full_name=e.full_name, phone=e.phone,
                               login_notifications=e.login_notifications)

    @process_event.register
    def _(self, e: User.KycSubmitted, tracking: Tracking) -> None:
        self.view.user_changed(e.originator_id, kyc_status="pending")

    @process_event.register
    def _(self, e: User.KycDecided, tracking: Tracking) -> None:
        self.view.user_changed(e.originator_id, kyc_status=(
            "verified" if e.decision == "approve" else "rejected"))

    @process_event.register
    def _(self, e: User.RoleChanged, tracking: Tracking) -> None:
        self.view.user_changed(e.originator_id, role=e.role)

    @process_event.register
    def _(self, e: User.TotpEnabled, tracking: Tracking) -> None:
        self.view.user_changed(e.originator_id, two_factor_enabled=True)

    @process_event.register
    def _(self, e: User.TotpDisabled, tracking: Tracking) -> None:
        self.view.user_changed(e.originator_id, two_factor_enabled=False)

    @process_event.register
    def _(self, e: Wallet.Frozen, tracking: Tracking) -> None:
        self.view.wallet_changed(e.originator_id, frozen=True)

    @process_event.register
    def _(self, e: Wallet.Unfrozen, tracking: Tracking) -> None:
        self.view.wallet_changed(e.originator_id, frozen=False)
