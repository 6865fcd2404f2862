"""The wallet read model: balances, per-wallet history with balance_after, payment orders, ledger totals."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow

from gopay.aggregates.payment_order import PaymentOrder
from gopay.aggregates.wallet import Wallet
from gopay.projections.view import PagedView


class WalletView(PagedView):
    """Balances and histories of wallets, payment orders and every ledger account's balance."""

    tables = ("wallets", "wallet_transactions", "payment_orders", "ledger_accounts")
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS wallets (
            wallet_id uuid PRIMARY KEY, owner_id uuid NOT NULL, currency text NOT NULL,
            balance bigint NOT NULL DEFAULT 0, held bigint NOT NULL DEFAULT 0,
            frozen boolean NOT NULL DEFAULT false, version bigint NOT NULL,
            opened_at timestamptz NOT NULL)""",
        """CREATE INDEX IF NOT EXISTS wallets_owner_idx ON wallets (owner_id)""",
        """CREATE TABLE IF NOT EXISTS wallet_transactions (
            wallet_id uuid NOT NULL, seq bigint NOT NULL, entry_id uuid NOT NULL,
            type text NOT NULL, direction text NOT NULL, amount bigint NOT NULL,
            currency text NOT NULL, status text NOT NULL, counterparty text NOT NULL,
            reference text NOT NULL, created_at timestamptz NOT NULL,
            balance_after bigint NOT NULL, PRIMARY KEY (wallet_id, seq))""",
        """CREATE TABLE IF NOT EXISTS payment_orders (
            id uuid PRIMARY KEY, type text NOT NULL, status text NOT NULL,
            initiated_by uuid NOT NULL, payer_wallet_id uuid, payee_wallet_id uuid,
            amount bigint NOT NULL, currency text NOT NULL, note text NOT NULL,
            psp_reference text, failure_reason text, postings jsonb,
            created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS ledger_accounts (
            account_id uuid NOT NULL, currency text NOT NULL, balance bigint NOT NULL,
            PRIMARY KEY (account_id, currency))""",
    )

    def start_page(self) -> None:
        self._opened: list[tuple[Any, ...]] = []
        self._wallet_changes: dict[UUID, dict[str, Any]] = {}
        self._history: list[tuple[Any, ...]] = []
        self._orders_created: list[tuple[Any, ...]] = []
        self._order_changes: list[tuple[Any, ...]] = []
        self._ledger_deltas: dict[tuple[UUID, str], int] = defaultdict(int)

    # Collecting a page (called by the projection, in log order)

    def wallet_opened(self, wallet_id: UUID, owner_id: UUID, currency: str, version: int,
                      at: datetime) -> None:
        self._opened.append((wallet_id, owner_id, currency, version, at))

    def wallet_changed(self, wallet_id: UUID, version: int, *, balance: int | None = None,
                       held_delta: int = 0, frozen: bool | None = None) -> None:
        change = self._wallet_changes.setdefault(wallet_id, {"held_delta": 0})
        change["version"] = version
        change["held_delta"] += held_delta
        if balance is not None:
            change["balance"] = balance
        if frozen is not None:
            change["frozen"] = frozen

    def history_row(self, wallet_id: UUID, seq: int, entry_id: UUID, entry_type: str,
                    direction: str, amount: int, currency: str, counterparty: str,
                    reference: str, at: datetime, balance_after: int) -> None:
        self._history.append((wallet_id, seq, entry_id, entry_type, direction, amount, currency,
                              "succeeded", counterparty, reference, at, balance_after))

    def order_created(self, order_id: UUID, order_type: str, initiated_by: UUID,
                      payer: UUID | None, payee: UUID | None, amount: int, currency: str,
                      note: str, at: datetime) -> None:
        self._orders_created.append((order_id, order_type, "created", initiated_by, payer, payee,
                                     amount, currency, note, at, at))

    def order_changed(self, order_id: UUID, status: str | None, at: datetime, *,
                      postings: list[dict[str, Any]] | None = None,
                      psp_reference: str | None = None, failure_reason: str | None = None) -> None:
        self._order_changes.append((status, json.dumps(postings) if postings else None,
                                    psp_reference, failure_reason, at, order_id))
        self.ledger_postings(postings or ())

    def ledger_postings(self, postings: Iterable[dict[str, Any]]) -> None:
        """A journal entry's legs, added to every account's ledger balance."""
        for posting in postings:
            key = (UUID(posting["account_id"]), posting["currency"])
            self._ledger_deltas[key] += posting["amount"]

    # Writing a page

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        if self._opened:
            cursor.executemany(
                "INSERT INTO wallets (wallet_id, owner_id, currency, version, opened_at) "
                "VALUES (%s, %s, %s, %s, %s)", self._opened)
        if self._wallet_changes:
            cursor.executemany(
                "UPDATE wallets SET balance = COALESCE(%s, balance), held = held + %s, "
                "frozen = COALESCE(%s, frozen), version = %s WHERE wallet_id = %s",
                [(c.get("balance"), c["held_delta"], c.get("frozen"), c["version"], wallet_id)
                 for wallet_id, c in self._wallet_changes.items()])
        if self._history:
            cursor.executemany(
                "INSERT INTO wallet_transactions (wallet_id, seq, entry_id, type, direction, "
                "amount, currency, status, counterparty, reference, created_at, balance_after) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", self._history)
        if self._orders_created:
            cursor.executemany(
                "INSERT INTO payment_orders (id, type, status, initiated_by, payer_wallet_id, "
                "payee_wallet_id, amount, currency, note, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", self._orders_created)
        if self._order_changes:
            cursor.executemany(
                "UPDATE payment_orders SET status = COALESCE(%s, status), "
                "postings = COALESCE(%s::jsonb, postings), "
                "psp_reference = COALESCE(%s, psp_reference), "
                "failure_reason = COALESCE(%s, failure_reason), updated_at = %s WHERE id = %s",
                self._order_changes)
        if self._ledger_deltas:
            cursor.executemany(
                "INSERT INTO ledger_accounts (account_id, currency, balance) VALUES (%s, %s, %s) "
                "ON CONFLICT (account_id, currency) "
                "DO UPDATE SET balance = ledger_accounts.balance + EXCLUDED.balance",
                [(account, currency, delta)
                 for (account, currency), delta in sorted(self._ledger_deltas.items())
                 if delta])

    # Queries

    def wallet(self, wallet_id: UUID) -> dict[str, Any] | None:
        rows = self.wallets([wallet_id])
        return rows[0] if rows else None

    def wallets(self, wallet_ids: list[UUID]) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM wallets WHERE wallet_id = ANY(%s)", (wallet_ids,))

    def transactions(self, wallet_id: UUID, *, limit: int, before_seq: int | None = None,
                     entry_type: str | None = None, since: datetime | None = None,
                     until: datetime | None = None) -> list[dict[str, Any]]:
        """Newest first; `before_seq` is the cursor of the previous page."""
        query = "SELECT * FROM wallet_transactions WHERE wallet_id = %s"
        params: list[Any] = [wallet_id]
        for condition, value in (("seq < %s", before_seq), ("type = %s", entry_type),
                                 ("created_at >= %s", since), ("created_at <= %s", until)):
            if value is not None:
                query += f" AND {condition}"
                params.append(value)
        return self.query(query + " ORDER BY seq DESC LIMIT %s",
                          (*params, limit))

    def order(self, order_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM payment_orders WHERE id = %s", (order_id,))
        return rows[0] if rows else None

    def ledger_totals(self) -> dict[str, int]:
        """Sum of every ledger account per currency: zero when the books balance."""
        return {row["currency"]: row["total"] for row in self.query(
            "SELECT currency, SUM(balance)::bigint AS total FROM ledger_accounts GROUP BY currency")}

    def ledger_accounts(self) -> dict[tuple[UUID, str], int]:
        """Every ledger account's balance, by (account id, currency)."""
        return {(row["account_id"], row["currency"]): row["balance"]
                for row in self.query("SELECT * FROM ledger_accounts")}

    def balances(self) -> dict[UUID, int]:
        return {row["wallet_id"]: row["balance"]
                for row in self.query("SELECT wallet_id, balance FROM wallets")}


class WalletProjection(Projection[WalletView]):
    """Turns wallet and payment-order events into the wallet read model."""

    name = "wallet_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events this read model does not show."""

    @process_event.register
    def _(self, e: Wallet.Opened, tracking: Tracking) -> None:
        self.view.wallet_opened(e.originator_id, e.owner_id, e.currency, e.originator_version,
                                e.timestamp)

    @process_event.register
    def _(self, e: Wallet.Debited, tracking: Tracking) -> None:
        self._posted(e, "debit")

    @process_event.register
    def _(self, e: Wallet.Credited, tracking: Tracking) -> None:
        self._posted(e, "credit")

    def _posted(self, e: Wallet.Debited | Wallet.Credited, direction: str) -> None:
        self.view.wallet_changed(e.originator_id, e.originator_version, balance=e.balance_after)
        self.view.history_row(e.originator_id, e.originator_version, e.entry_id, e.entry_type,
                              direction, e.amount, e.currency, e.counterparty, e.reference,
                              e.timestamp, e.balance_after)

    @process_event.register
    def _(self, e: Wallet.Held, tracking: Tracking) -> None:
        self.view.wallet_changed(e.originator_id, e.originator_version, held_delta=e.amount)

    @process_event.register
    def _(self, e: Wallet.Released, tracking: Tracking) -> None:
        self.view.wallet_changed(e.originator_id, e.originator_version, held_delta=-e.amount)

    @process_event.register
    def _(self, e: Wallet.Frozen, tracking: Tracking) -> None:
        self.view.wallet_changed(e.originator_id, e.originator_version, frozen=True)

    @process_event.register
    def _(self, e: Wallet.Unfrozen, tracking: Tracking) -> None:
        self.view.wallet_changed(e.originator_id, e.originator_version, frozen=False)

    @process_event.register
    def _(self, e: PaymentOrder.Created, tracking: Tracking) -> None:
        self.view.order_created(e.originator_id, e.order_type, e.initiated_by, e.payer_wallet_id,
                                e.payee_wallet_id, e.amount, e.currency, e.note, e.timestamp)

    @process_event.register
    def _(self, e: Wallet.Captured, tracking: Tracking) -> None:
        self.view.wallet_changed(e.originator_id, e.originator_version, balance=e.balance_after,
                                 held_delta=-e.amount)
        self.view.history_row(e.originator_id, e.originator_version, e.hold_id, e.entry_type,
                              "debit", e.amount, e.currency, e.counterparty, e.reference,
                              e.timestamp, e.balance_after)

    @process_event.register
    def _(self, e: PaymentOrder.Planned, tracking: Tracking) -> None:
        self.view.order_changed(e.originator_id, "pending", e.timestamp)

    @process_event.register
    def _(self, e: PaymentOrder.PspReferenceNoted, tracking: Tracking) -> None:
        self.view.order_changed(e.originator_id, None, e.timestamp, psp_reference=e.psp_reference)

    @process_event.register
    def _(self, e: PaymentOrder.MarkedPending, tracking: Tracking) -> None:
        self.view.order_changed(e.originator_id, "pending", e.timestamp,
                                psp_reference=e.psp_reference)

    @process_event.register
    def _(self, e: PaymentOrder.Succeeded, tracking: Tracking) -> None:
        self.view.order_changed(e.originator_id, "succeeded", e.timestamp, postings=e.postings)

    @process_event.register
    def _(self, e: PaymentOrder.Reversed, tracking: Tracking) -> None:
        self.view.order_changed(e.originator_id, "reversed", e.timestamp)
        self.view.ledger_postings(e.postings)

    @process_event.register
    def _(self, e: PaymentOrder.Failed, tracking: Tracking) -> None:
        self.view.order_changed(e.originator_id, "failed", e.timestamp,
                                failure_reason=e.reason)
