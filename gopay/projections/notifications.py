"""Notifications as a process on the log: each event a person should hear of becomes one notice.

The projection reads the log like every read model (one runner, one process at a time, each
page's rows and tracking position in one transaction) and turns an event into at most one
notice for the person it concerns: a row in `user_notifications` when they keep the in-app
channel on, and a row in the e-mail outbox when they keep e-mail on (security notices are
always sent by both). A notice's id is derived from its event, and both inserts skip what is
there already, so a crash, a takeover by another process or a rebuild replays pages without
telling anyone twice. The outbox sends the e-mail (`gopay.notifications.outbox`), rendered
from the notice when it goes out.

The notices (and the read marks on them) are a record of work, not a disposable read model:
rebuilding empties only the helper tables (who owns which wallet, pending PSP orders, known
devices, preferences), which replay to the same answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, LiteralString, cast
from uuid import UUID, uuid5

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from prometheus_client import Counter, Histogram
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from gopay.aggregates.fraud import Review
from gopay.aggregates.ledger import LEDGER_NAMESPACE, TransactionType
from gopay.aggregates.notification_preferences import SECURITY_TYPES, NotificationPreferences
from gopay.aggregates.payment_order import PaymentOrder
from gopay.aggregates.payment_request import PaymentRequest
from gopay.aggregates.support_ticket import SupportTicket
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.notifications.letters import Letter, letter, title_and_body
from gopay.projections.view import PagedView

NOTICES = Counter("gopay_notifications_total", "Notifications created, by type and channel",
                  ["type", "channel"])
DELIVERY_LAG = Histogram("gopay_notification_delivery_seconds",
                         "From the event to the notice reaching its channel (in-app: created; "
                         "e-mail: taken by the SMTP server)", ["channel"],
                         buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600))

# How much of a support reply a notice quotes (the ticket holds it whole).
REPLY_EXCERPT = 280

PASSWORD_RESET: type[Any] = User.PasswordReset  # type: ignore[attr-defined]  # declared by @event("PasswordReset")
# The PSP orders whose outcome their owner is told of (a refusal at the request is answered there).
TOLD_ORDERS = (TransactionType.TOPUP, TransactionType.PAYOUT)

# One notice: the person (by user, wallet or pending order), their preferences, the in-app row
# and the e-mail's outbox row, each skipped when it exists already. Answers what it created.
NOTIFY: LiteralString = """
WITH target AS (
    SELECT u.user_id FROM notification_users u
    WHERE u.user_id = %(user)s::uuid OR u.wallet_id = %(wallet)s::uuid
       OR u.wallet_id = (SELECT o.wallet_id FROM notification_orders o
                         WHERE o.order_id = %(order)s::uuid AND o.planned
                         AND o.order_type = %(order_type)s)
    LIMIT 1),
wanted AS (
    SELECT t.user_id, COALESCE(p.in_app, true) OR %(forced)s AS in_app,
           COALESCE(p.email, true) OR %(forced)s AS email
    FROM target t LEFT JOIN notification_preferences p
         ON p.user_id = t.user_id AND p.type = %(type)s
    WHERE %(device)s::text IS NULL OR (
        EXISTS (SELECT 1 FROM notification_devices d WHERE d.user_id = t.user_id
                AND d.device_id = %(device)s AND d.first_position = %(position)s)
        AND EXISTS (SELECT 1 FROM notification_devices d WHERE d.user_id = t.user_id
                    AND d.first_position < %(position)s))),
made AS (
    INSERT INTO user_notifications (id, user_id, type, data, created_at, position, in_app, email)
    SELECT %(id)s, w.user_id, %(type)s,
           COALESCE((SELECT jsonb_build_object('order_id', o.order_id, 'amount', o.amount,
                                               'currency', o.currency)
                     FROM notification_orders o WHERE o.order_id = %(order)s::uuid),
                    '{}'::jsonb)
           || COALESCE((SELECT jsonb_build_object('payment_id', r.order_id)
                        FROM notification_reviews r WHERE r.review_id = %(order)s::uuid),
                       '{}'::jsonb) || %(data)s,
           %(at)s, %(position)s, w.in_app, w.email
    FROM wanted w WHERE w.in_app OR w.email
    ON CONFLICT (id) DO NOTHING RETURNING id, user_id, in_app, email),
queued AS (
    INSERT INTO outbox (user_id, recipient, subject, body, notification_id)
    SELECT m.user_id, '', '', '', m.id FROM made m WHERE m.email
    ON CONFLICT (notification_id) DO NOTHING RETURNING notification_id)
SELECT (SELECT count(*) FROM made WHERE in_app) AS in_app, (SELECT count(*) FROM queued) AS email
"""


class NotificationView(PagedView):
    """People's notices, and what the projection needs to know to address them."""

    # The notices themselves are kept: see the docstring.
    tables = ("notification_users", "notification_orders", "notification_devices",
              "notification_preferences", "notification_reviews")
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS notification_users (
            user_id uuid PRIMARY KEY, wallet_id uuid, email text NOT NULL, full_name text NOT NULL)""",
        """CREATE INDEX IF NOT EXISTS notification_users_wallet_idx ON notification_users (wallet_id)""",
        """CREATE TABLE IF NOT EXISTS notification_orders (
            order_id uuid PRIMARY KEY, order_type text NOT NULL, wallet_id uuid NOT NULL,
            amount bigint NOT NULL,
            currency text NOT NULL, planned boolean NOT NULL DEFAULT false)""",
        """CREATE TABLE IF NOT EXISTS notification_reviews (
            review_id uuid PRIMARY KEY, order_id uuid NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS notification_devices (
            user_id uuid NOT NULL, device_id text NOT NULL, first_position bigint NOT NULL,
            PRIMARY KEY (user_id, device_id))""",
        """CREATE TABLE IF NOT EXISTS notification_preferences (
            user_id uuid NOT NULL, type text NOT NULL, email boolean, in_app boolean,
            PRIMARY KEY (user_id, type))""",
        """CREATE TABLE IF NOT EXISTS user_notifications (
            id uuid PRIMARY KEY, seq bigserial UNIQUE, user_id uuid NOT NULL, type text NOT NULL,
            data jsonb NOT NULL, created_at timestamptz NOT NULL, position bigint NOT NULL,
            in_app boolean NOT NULL, email boolean NOT NULL, read_at timestamptz)""",
        """CREATE INDEX IF NOT EXISTS user_notifications_inbox_idx
            ON user_notifications (user_id, seq DESC) WHERE in_app""",
        """CREATE INDEX IF NOT EXISTS user_notifications_unread_idx
            ON user_notifications (user_id) WHERE in_app AND read_at IS NULL""",
    )

    def start_page(self) -> None:
        # Statements in the order of their events: a notice may depend on rows written before it.
        self._steps: list[tuple[LiteralString, dict[str, Any] | tuple[Any, ...]]] = []

    def step(self, statement: LiteralString, params: dict[str, Any] | tuple[Any, ...]) -> None:
        self._steps.append((statement, params))

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        now = datetime.now(UTC)
        index = 0
        while index < len(self._steps):
            statement = self._steps[index][0]
            end = index
            while end < len(self._steps) and self._steps[end][0] is statement:
                end += 1
            params = [p for _, p in self._steps[index:end]]
            if statement is NOTIFY:
                self._notify(cursor, cast(list[dict[str, Any]], params), now)
            else:
                cursor.executemany(statement, params)
            index = end

    @staticmethod
    def _notify(cursor: Cursor[DictRow], notices: list[dict[str, Any]], now: datetime) -> None:
        cursor.executemany(NOTIFY, notices, returning=True)
        for notice in notices:
            row = cursor.fetchone()
            if row:
                for channel in ("in_app", "email"):
                    if row[channel]:
                        NOTICES.labels(notice["type"], channel).inc(row[channel])
                if row["in_app"]:
                    DELIVERY_LAG.labels("in_app").observe((now - notice["at"]).total_seconds())
            if not cursor.nextset():
                break

    # Queries (the API's)

    def inbox(self, user_id: UUID, *, unread: bool, limit: int, before: int | None
              ) -> list[dict[str, Any]]:
        """A person's in-app notices, newest first, from before the `seq` cursor."""
        return self.query(
            "SELECT * FROM user_notifications WHERE user_id = %(user)s AND in_app "
            "AND (NOT %(unread)s OR read_at IS NULL) "
            "AND (%(before)s::bigint IS NULL OR seq < %(before)s) "
            "ORDER BY seq DESC LIMIT %(limit)s",
            {"user": user_id, "unread": unread, "before": before, "limit": limit})

    def since(self, user_id: UUID, after: int, limit: int) -> list[dict[str, Any]]:
        """A person's in-app notices after `seq`, oldest first (what a live stream sends next)."""
        return self.query(
            "SELECT * FROM user_notifications WHERE user_id = %s AND in_app AND seq > %s "
            "ORDER BY seq LIMIT %s", (user_id, after, limit))

    def last_seq(self, user_id: UUID) -> int:
        rows = self.query("SELECT max(seq) AS seq FROM user_notifications "
                          "WHERE user_id = %s AND in_app", (user_id,))
        return int(rows[0]["seq"] or 0) if rows else 0

    def notice(self, user_id: UUID, notice_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM user_notifications WHERE id = %s AND user_id = %s "
                          "AND in_app", (notice_id, user_id))
        return rows[0] if rows else None

    def unread_count(self, user_id: UUID) -> int:
        rows = self.query("SELECT count(*) AS n FROM user_notifications "
                          "WHERE user_id = %s AND in_app AND read_at IS NULL", (user_id,))
        return int(rows[0]["n"]) if rows else 0

    def mark_read(self, user_id: UUID, notice_id: UUID) -> dict[str, Any] | None:
        """Mark one of a person's notices read (the first time counts); None if not theirs.

        A read mark is the person's inbox state, not a fact of the business: it is kept
        here, on the primary, and is not an event.
        """
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "UPDATE user_notifications SET read_at = COALESCE(read_at, now()) "
                "WHERE id = %s AND user_id = %s AND in_app RETURNING *", (notice_id, user_id))
            return cursor.fetchone()

    def preferences(self, user_id: UUID) -> dict[str, dict[str, bool]]:
        rows = self.query("SELECT * FROM notification_preferences WHERE user_id = %s", (user_id,))
        return {row["type"]: {c: row[c] for c in ("email", "in_app") if row[c] is not None}
                for row in rows}

    def letter(self, notice_id: UUID) -> Letter | None:
        """The e-mail of a notice (for the outbox); None if its person is unknown."""
        with self.datastore.transaction(commit=False) as cursor:  # the primary: as the outbox
            cursor.execute(
                "SELECT n.type, n.data, u.email, u.full_name FROM user_notifications n "
                "JOIN notification_users u ON u.user_id = n.user_id WHERE n.id = %s", (notice_id,))
            row = cursor.fetchone()
        if row is None:
            return None
        return letter(row["email"], row["full_name"], row["type"], row["data"])


def notice_public(row: Mapping[str, Any]) -> dict[str, Any]:
    """A notice as the API shows it."""
    title, body = title_and_body(row["type"], row["data"])
    return {"id": row["id"], "type": row["type"], "title": title, "body": body,
            "data": row["data"], "created_at": row["created_at"], "read_at": row["read_at"],
            "seq": row["seq"]}


class NotificationProjection(Projection[NotificationView]):
    """Turns the events a person should hear of into notices (see the module docstring)."""

    name = "notification_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        if isinstance(domain_event, PASSWORD_RESET):
            self._notify(domain_event, tracking, "security.password_changed",
                         user=domain_event.originator_id)

    # Whom a notice reaches, and what they asked for

    @process_event.register
    def _(self, e: User.Registered, tracking: Tracking) -> None:
        self.view.step("INSERT INTO notification_users (user_id, wallet_id, email, full_name) "
                       "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                       (e.originator_id, e.wallet_id, e.email, e.full_name))

    @process_event.register
    def _(self, e: User.ProfileChanged, tracking: Tracking) -> None:
        self.view.step("UPDATE notification_users SET full_name = %s WHERE user_id = %s",
                       (e.full_name, e.originator_id))

    @process_event.register
    def _(self, e: NotificationPreferences.Changed, tracking: Tracking) -> None:
        for kind, channels in e.preferences.items():
            self.view.step(
                "INSERT INTO notification_preferences (user_id, type, email, in_app) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (user_id, type) DO UPDATE "
                "SET email = EXCLUDED.email, in_app = EXCLUDED.in_app",
                (e.user_id, kind, channels.get("email"), channels.get("in_app")))

    @process_event.register
    def _(self, e: PaymentOrder.Created, tracking: Tracking) -> None:
        wallet_id = e.payee_wallet_id if e.order_type == TransactionType.TOPUP else e.payer_wallet_id
        if e.order_type in TOLD_ORDERS and wallet_id is not None:
            self.view.step("INSERT INTO notification_orders (order_id, order_type, wallet_id, "
                           "amount, currency) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                           (e.originator_id, e.order_type, wallet_id, e.amount, e.currency))

    @process_event.register
    def _(self, e: PaymentOrder.Planned, tracking: Tracking) -> None:
        # Sent to the PSP: from now on its outcome is news (a refusal before it is the answer).
        self.view.step("UPDATE notification_orders SET planned = true WHERE order_id = %s",
                       (e.originator_id,))

    # Money

    @process_event.register
    def _(self, e: Wallet.Credited, tracking: Tracking) -> None:
        kind = {TransactionType.TRANSFER: "transfer.received",
                TransactionType.TOPUP: "topup.succeeded"}.get(TransactionType(e.entry_type))
        if kind is not None:
            self._notify(e, tracking, kind, wallet=e.originator_id, data={
                "amount": e.amount, "currency": e.currency, "counterparty": e.counterparty,
                "reference": e.reference, "transaction_id": str(e.entry_id)})

    @process_event.register
    def _(self, e: Wallet.Captured, tracking: Tracking) -> None:
        if e.entry_type == TransactionType.PAYOUT:
            self._notify(e, tracking, "payout.paid", wallet=e.originator_id, data={
                "amount": e.amount, "currency": e.currency, "order_id": str(e.hold_id)})

    @process_event.register
    def _(self, e: PaymentOrder.Failed, tracking: Tracking) -> None:
        # Only orders sent to the PSP are found (see Planned); the type is the order's.
        for order_type in TOLD_ORDERS:
            self._notify(e, tracking, f"{order_type}.failed", order=e.originator_id,
                         order_type=order_type, data={"reason": e.reason})

    @process_event.register
    def _(self, e: PaymentRequest.Created, tracking: Tracking) -> None:
        self._notify(e, tracking, "payment_request.received", user=e.payer_id, data={
            "payment_request_id": str(e.originator_id), "amount": e.amount,
            "currency": e.currency, "note": e.note, "expires_at": e.expires_at})

    @process_event.register
    def _(self, e: SupportTicket.StaffReplied, tracking: Tracking) -> None:
        self._notify(e, tracking, "support.reply", user=e.customer_id, data={
            "ticket_id": str(e.originator_id), "message_id": str(e.message_id),
            "excerpt": e.body[:REPLY_EXCERPT], "truncated": len(e.body) > REPLY_EXCERPT})

    # The account and its security

    @process_event.register
    def _(self, e: User.LoggedIn, tracking: Tracking) -> None:
        if e.device_id is None:
            return
        self.view.step("INSERT INTO notification_devices (user_id, device_id, first_position) "
                       "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                       (e.originator_id, e.device_id, tracking.notification_id))
        self._notify(e, tracking, "login.new_device", user=e.originator_id, device=e.device_id,
                     data={"device_id": e.device_id, "address": e.address, "at": e.at})

    @process_event.register
    def _(self, e: User.KycDecided, tracking: Tracking) -> None:
        self._notify(e, tracking, "kyc.decided", user=e.originator_id,
                     data={"decision": e.decision, "reason": e.reason})

    @process_event.register
    def _(self, e: User.TotpEnabled, tracking: Tracking) -> None:
        self._notify(e, tracking, "security.two_factor_changed", user=e.originator_id,
                     data={"enabled": True})

    @process_event.register
    def _(self, e: User.TotpDisabled, tracking: Tracking) -> None:
        self._notify(e, tracking, "security.two_factor_changed", user=e.originator_id,
                     data={"enabled": False})

    # A payment held for review: its sender is told the decision, by the review's id (kept as
    # the "order" a notice is addressed by; `payment_id` names the payment itself).

    @process_event.register
    def _(self, e: Review.Opened, tracking: Tracking) -> None:
        self.view.step("INSERT INTO notification_orders (order_id, order_type, wallet_id, amount, "
                       "currency, planned) VALUES (%s, 'review', %s, %s, %s, true) "
                       "ON CONFLICT DO NOTHING",
                       (e.originator_id, e.sender_wallet_id, e.amount, e.currency))
        self.view.step("INSERT INTO notification_reviews (review_id, order_id) VALUES (%s, %s) "
                       "ON CONFLICT DO NOTHING", (e.originator_id, e.order_id))

    @process_event.register
    def _(self, e: Review.Approved, tracking: Tracking) -> None:
        self._review_decided(e, tracking, "approve")

    @process_event.register
    def _(self, e: Review.Rejected, tracking: Tracking) -> None:
        self._review_decided(e, tracking, "reject")

    def _review_decided(self, e: Any, tracking: Tracking, decision: str) -> None:
        self._notify(e, tracking, "review.decided", order=e.originator_id, order_type="review",
                     data={"decision": decision})

    def _notify(self, e: Any, tracking: Tracking, kind: str, *, user: UUID | None = None,
                wallet: UUID | None = None, order: UUID | None = None,
                order_type: str | None = None, device: str | None = None,
                data: Mapping[str, Any] | None = None) -> None:
        self.view.step(NOTIFY, {
            "id": uuid5(LEDGER_NAMESPACE, f"notification/{e.originator_id}/"
                                          f"{e.originator_version}/{kind}"),
            "type": kind, "forced": kind in SECURITY_TYPES, "user": user, "wallet": wallet,
            "order": order, "order_type": order_type, "device": device, "position": tracking.notification_id,
            "at": e.timestamp, "data": Jsonb(dict(data or {}))})
