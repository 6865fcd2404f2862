"""The merchant read model: QR codes, the payments a merchant received with what was refunded, API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow

from gopay.aggregates.api_key import ApiKey
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.qr_code import QrCode
from gopay.aggregates.refunds import PaymentRefunds
from gopay.aggregates.wallet import Wallet
from gopay.projections.view import PagedView


class MerchantView(PagedView):
    """What a merchant reads about its own business."""

    tables = ("qr_codes", "merchant_payments", "api_keys")
    version = 2  # 2: what open or won disputes claim of each payment (`disputed`)
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS qr_codes (
            id uuid PRIMARY KEY, merchant_id uuid NOT NULL, wallet_id uuid NOT NULL,
            amount bigint, currency text NOT NULL, reference text NOT NULL,
            expires_at timestamptz, payment_id uuid, created_at timestamptz NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS merchant_payments (
            id uuid PRIMARY KEY, merchant_wallet_id uuid NOT NULL, payer_wallet_id text NOT NULL,
            amount bigint NOT NULL, currency text NOT NULL, fee bigint NOT NULL DEFAULT 0,
            refunded bigint NOT NULL DEFAULT 0, disputed bigint NOT NULL DEFAULT 0,
            reference text NOT NULL,
            created_at timestamptz NOT NULL)""",
        """CREATE INDEX IF NOT EXISTS merchant_payments_wallet_idx
            ON merchant_payments (merchant_wallet_id, created_at DESC, id DESC)""",
        """CREATE TABLE IF NOT EXISTS api_keys (
            id uuid PRIMARY KEY, owner_id uuid NOT NULL, name text NOT NULL, prefix text NOT NULL,
            last4 text NOT NULL, created_at timestamptz NOT NULL, revoked_at timestamptz)""",
        """CREATE INDEX IF NOT EXISTS api_keys_owner_idx ON api_keys (owner_id, created_at)""",
    )

    def start_page(self) -> None:
        self._codes: list[tuple[Any, ...]] = []
        self._codes_paid: list[tuple[Any, ...]] = []
        self._payments: dict[UUID, list[Any]] = {}
        self._wallets_seen: set[UUID] = set()
        self._fees: list[tuple[Any, ...]] = []
        self._refunds: list[tuple[Any, ...]] = []
        self._disputed: list[tuple[Any, ...]] = []
        self._keys: list[tuple[Any, ...]] = []
        self._keys_revoked: list[tuple[Any, ...]] = []

    # Collecting a page

    def code_created(self, row: tuple[Any, ...]) -> None:
        self._codes.append(row)

    def code_paid(self, qr_id: UUID, payment_id: UUID) -> None:
        self._codes_paid.append((payment_id, qr_id))

    def payment_received(self, payment_id: UUID, row: list[Any]) -> None:
        self._payments[payment_id] = row

    def wallet_line(self, wallet_id: UUID) -> bool:
        """Note a line of the wallet's history; whether it is the wallet's first in this page."""
        first = wallet_id not in self._wallets_seen
        self._wallets_seen.add(wallet_id)
        return first

    def fee_paid(self, payment_id: UUID, wallet_id: UUID, amount: int, *, first_line: bool) -> None:
        """A payee-paid fee: the wallet's next line after its payment's credit, in one commit."""
        row = self._payments.get(payment_id)
        if row is not None and row[1] == wallet_id:
            row[5] += amount
        elif first_line:  # the credit may have ended the page before: look for it there
            self._fees.append((amount, payment_id, wallet_id))

    def refunded(self, payment_id: UUID, amount: int) -> None:
        self._refunds.append((amount, payment_id))

    def disputed(self, payment_id: UUID, total: int) -> None:
        """What disputes open or won by the customer claim of the payment now."""
        self._disputed.append((total, payment_id))

    def key_issued(self, row: tuple[Any, ...]) -> None:
        self._keys.append(row)

    def key_revoked(self, key_id: UUID, at: datetime) -> None:
        self._keys_revoked.append((at, key_id))

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        if self._codes:
            cursor.executemany(
                "INSERT INTO qr_codes (id, merchant_id, wallet_id, amount, currency, reference, "
                "expires_at, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", self._codes)
        if self._codes_paid:
            cursor.executemany("UPDATE qr_codes SET payment_id = %s WHERE id = %s",
                               self._codes_paid)
        if self._payments:
            cursor.executemany(
                "INSERT INTO merchant_payments (id, merchant_wallet_id, payer_wallet_id, amount, "
                "currency, fee, reference, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                list(self._payments.values()))
        if self._fees:
            cursor.executemany("UPDATE merchant_payments SET fee = fee + %s "
                               "WHERE id = %s AND merchant_wallet_id = %s", self._fees)
        if self._refunds:
            cursor.executemany("UPDATE merchant_payments SET refunded = refunded + %s "
                               "WHERE id = %s", self._refunds)
        if self._disputed:  # totals, in log order: the last one stands
            cursor.executemany("UPDATE merchant_payments SET disputed = %s WHERE id = %s",
                               self._disputed)
        if self._keys:
            cursor.executemany(
                "INSERT INTO api_keys (id, owner_id, name, prefix, last4, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)", self._keys)
        if self._keys_revoked:
            cursor.executemany("UPDATE api_keys SET revoked_at = %s WHERE id = %s",
                               self._keys_revoked)

    # Queries

    def qr_code(self, qr_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM qr_codes WHERE id = %s", (qr_id,))
        return rows[0] if rows else None

    def payments(self, wallet_id: UUID, *, limit: int, after: UUID | None = None
                 ) -> list[dict[str, Any]]:
        """Payments the wallet received, newest first; `after` is the last id of the page before."""
        if after is None:
            return self.query("SELECT * FROM merchant_payments WHERE merchant_wallet_id = %s "
                              "ORDER BY created_at DESC, id DESC LIMIT %s", (wallet_id, limit))
        return self.query(
            "SELECT * FROM merchant_payments WHERE merchant_wallet_id = %s AND (created_at, id) < "
            "(SELECT created_at, id FROM merchant_payments WHERE id = %s) "
            "ORDER BY created_at DESC, id DESC LIMIT %s", (wallet_id, after, limit))

    def payment(self, payment_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM merchant_payments WHERE id = %s", (payment_id,))
        return rows[0] if rows else None

    def api_keys(self, owner_id: UUID) -> list[dict[str, Any]]:
        """A merchant's keys, revoked ones too, oldest first."""
        return self.query("SELECT * FROM api_keys WHERE owner_id = %s ORDER BY created_at, id",
                          (owner_id,))


class MerchantProjection(Projection[MerchantView]):
    """Turns QR codes, merchants' incoming payments, refunds and API keys into the merchant view."""

    name = "merchant_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events this view does not show."""

    @process_event.register
    def _(self, e: QrCode.Created, tracking: Tracking) -> None:
        self.view.code_created((e.originator_id, e.merchant_id, e.wallet_id, e.amount, e.currency,
                                e.reference, e.expires_at, e.timestamp))

    @process_event.register
    def _(self, e: QrCode.Paid, tracking: Tracking) -> None:
        self.view.code_paid(e.originator_id, e.payment_id)

    @process_event.register
    def _(self, e: Wallet.Credited, tracking: Tracking) -> None:
        self.view.wallet_line(e.originator_id)
        if e.entry_type == TransactionType.QR_PAYMENT:
            self.view.payment_received(e.entry_id, [
                e.entry_id, e.originator_id, e.counterparty, e.amount, e.currency, 0,
                e.reference, e.timestamp])

    @process_event.register
    def _(self, e: Wallet.Debited, tracking: Tracking) -> None:
        first_line = self.view.wallet_line(e.originator_id)
        if e.entry_type == TransactionType.FEE:
            self.view.fee_paid(e.entry_id, e.originator_id, e.amount, first_line=first_line)

    @process_event.register
    def _(self, e: PaymentRefunds.Refunded, tracking: Tracking) -> None:
        self.view.refunded(e.payment_id, e.amount)

    @process_event.register
    def _(self, e: PaymentRefunds.Disputed, tracking: Tracking) -> None:
        self.view.disputed(e.payment_id, e.disputed_total)

    @process_event.register
    def _(self, e: PaymentRefunds.DisputeDropped, tracking: Tracking) -> None:
        self.view.disputed(e.payment_id, e.disputed_total)

    @process_event.register
    def _(self, e: ApiKey.Issued, tracking: Tracking) -> None:
        self.view.key_issued((e.originator_id, e.owner_id, e.name, e.prefix, e.last4, e.timestamp))

    @process_event.register
    def _(self, e: ApiKey.Revoked, tracking: Tracking) -> None:
        self.view.key_revoked(e.originator_id, e.timestamp)
