"""Business analytics: per UTC day and currency, what moved (by type), the fees, failures and users.

A payment order counts on the day it succeeded (or failed), with the type, amount and
currency its `Created` event gave; an order still pending at the end of a page waits in a
small table until its outcome comes. The fees are the fee lines of wallets' histories (what
customers paid GoPay); an active user is a customer whose wallet had a line that day (sent
or received money); a new user is a customer who registered that day. Staff are no users
here: they have no wallet.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from eventsourcing.utils import get_topic
from psycopg import Connection, Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Literal

from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.payment_order import PaymentOrder
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.projections import arrays
from gopay.projections.view import Check, PagedView, StoredStates
from gopay.projections.wallets import (
    BOOKS_COMPARED,
    EVERY_POSITION,
    ORDER_TOPICS,
    ORDERS_COMPARED,
    ORDERS_EXPECTED,
    ORDERS_EXPECTED_AND_LEGS,
    Books,
    WalletProjection,
    WalletView,
    differences,
)

# The daily table's metrics besides the order types: fees charged, and orders that failed.
FEES = "fee"
FAILED = "failed"

# The events this read model shows, by the names the check below gives them.
TOPICS = {name: get_topic(cls) for name, cls in (
    ("created", PaymentOrder.Created), ("succeeded", PaymentOrder.Succeeded),
    ("failed", PaymentOrder.Failed), ("registered", User.Registered),
    ("credited", Wallet.Credited), ("debited", Wallet.Debited), ("captured", Wallet.Captured))}

# The read model recomputed in SQL and compared table by table: how many rows of each
# differ. It says what the projection below says, and must change with it. What it is
# recomputed from comes first, as `orders` (id, type, amount, currency, succeeded_on,
# failed_on), `customers` (wallet_id, user_id, registered_on) and `lines`, the wallets' lines
# (wallet_id, debit, entry_type, amount, currency, day); then the comparison.
FROM_EVENTS = """
WITH events AS MATERIALIZED (
  SELECT e.originator_id AS id, e.topic, r.order_type, r.entry_type, r.amount, r.currency,
    (r.wallet_id ->> '_data_')::uuid AS wallet_id,
    ((r."timestamp" ->> '_data_')::timestamptz AT TIME ZONE 'UTC')::date AS day
  FROM ({events}) AS e, jsonb_to_record(e.state) AS r("timestamp" jsonb, order_type text,
    entry_type text, amount bigint, currency text, wallet_id jsonb)),
orders AS (
  SELECT id, min(order_type) FILTER (WHERE topic = {created}) AS type,
    min(amount) FILTER (WHERE topic = {created}) AS amount,
    min(currency) FILTER (WHERE topic = {created}) AS currency,
    min(day) FILTER (WHERE topic = {succeeded}) AS succeeded_on,
    min(day) FILTER (WHERE topic = {failed}) AS failed_on
  FROM events WHERE topic IN ({created}, {succeeded}, {failed}) GROUP BY id),
customers AS (
  SELECT wallet_id, id AS user_id, day AS registered_on FROM events
  WHERE topic = {registered} AND wallet_id IS NOT NULL),
lines AS (
  SELECT id AS wallet_id, topic IN ({debited}, {captured}) AS debit, entry_type, amount,
    currency, day
  FROM events WHERE topic IN ({credited}, {debited}, {captured})),
"""
# The same, where the wallet read model has reached the same position: its own check compares
# its lines and orders column by column with the events (`WalletView.checks`), so they stand
# for those events here, and only what that view does not keep (the days orders ended, who
# registered) is read from the events: about a quarter of the JSON to parse (ENDED_FROM_STATES,
# then CUSTOMERS_AND_LINES). The lines are not materialized: each use reads the few it needs
# (the fees, the customers') from the table.
LINES = """
lines AS NOT MATERIALIZED (
  SELECT wallet_id, direction = 'debit' AS debit, type AS entry_type, amount, currency,
    (created_at AT TIME ZONE 'UTC')::date AS day
  FROM wallet_transactions),
"""
CUSTOMERS = """
customers AS (
  SELECT (r.wallet_id ->> '_data_')::uuid AS wallet_id, e.originator_id AS user_id,
    ((r."timestamp" ->> '_data_')::timestamptz AT TIME ZONE 'UTC')::date AS registered_on
  FROM ({registrations}) AS e, jsonb_to_record(e.state) AS r("timestamp" jsonb, wallet_id jsonb)
  WHERE (r.wallet_id ->> '_data_') IS NOT NULL),"""
CUSTOMERS_AND_LINES = CUSTOMERS + LINES
# The customers again, where the registrations came in the order events' pass
# (ORDERS_EXPECTED_AND_LEGS' `logged`, up to the view's position): no pass of their own.
LOGGED_CUSTOMERS = """
customers AS (
  SELECT (r.wallet_id ->> '_data_')::uuid AS wallet_id, e.id AS user_id,
    ((r."timestamp" ->> '_data_')::timestamptz AT TIME ZONE 'UTC')::date AS registered_on
  FROM logged AS e, jsonb_to_record(e.other_state) AS r("timestamp" jsonb, wallet_id jsonb)
  WHERE e.topic = {registered} AND e.position <= {shown}
    AND (r.wallet_id ->> '_data_') IS NOT NULL),"""
ENDED_FROM_STATES = """
WITH ended AS (
  SELECT id, min(day) FILTER (WHERE topic = {succeeded}) AS succeeded_on,
    min(day) FILTER (WHERE topic = {failed}) AS failed_on
  FROM (SELECT e.originator_id AS id, e.topic,
      ((e.state #>> '{{timestamp,_data_}}')::timestamptz AT TIME ZONE 'UTC')::date AS day
    FROM ({ended}) AS e OFFSET 0) AS e
  GROUP BY 1),
orders AS (
  SELECT o.id, o.type, o.amount, o.currency, x.succeeded_on, x.failed_on
  FROM payment_orders AS o LEFT JOIN ended AS x USING (id)),"""
# The same again, joined to the wallet view's check of its payment orders and ledger accounts
# (`WalletView.orders_drift`) in one statement: the orders and the days they ended come from
# that statement's order events (`orders_expected`, which groups them per order with the days
# they ended), so their JSON is parsed once for both checks, and analytics' orders are
# compared with what the events say.
ENDED_FROM_ORDER_EVENTS = """,
orders AS (
  SELECT id, type, amount, currency, succeeded_on, failed_on FROM orders_expected),"""
COMPARED_TABLES = """
daily AS (
  SELECT succeeded_on AS day, currency, type AS metric, count(*) AS count,
    sum(amount)::bigint AS volume
  FROM orders WHERE type IS NOT NULL AND succeeded_on IS NOT NULL GROUP BY 1, 2, 3
  UNION ALL
  SELECT failed_on, currency, 'failed', count(*), sum(amount)::bigint
  FROM orders WHERE type IS NOT NULL AND failed_on IS NOT NULL GROUP BY 1, 2
  UNION ALL
  SELECT day, currency, 'fee', count(*), sum(amount)::bigint FROM lines
  WHERE debit AND entry_type = 'fee' GROUP BY 1, 2),
active AS (
  SELECT DISTINCT e.day, c.user_id FROM lines AS e JOIN customers AS c USING (wallet_id)),
open_orders AS (
  SELECT id, type, amount, currency FROM orders
  WHERE type IS NOT NULL AND succeeded_on IS NULL AND failed_on IS NULL)
"""
COMPARED_COLUMNS = """
  (SELECT count(*) FROM daily AS e FULL JOIN analytics_daily AS a USING (day, currency, metric)
   WHERE (e.count, e.volume) IS DISTINCT FROM (a.count, a.volume)) AS analytics_daily,
  (SELECT count(*) FROM customers AS e FULL JOIN analytics_customers AS a USING (wallet_id)
   WHERE (e.user_id, e.registered_on) IS DISTINCT FROM (a.user_id, a.registered_on))
   AS analytics_customers,
  (SELECT count(*) FROM (SELECT *, true AS expected FROM active) AS e
   FULL JOIN (SELECT *, true AS shown FROM analytics_active_users) AS a USING (day, user_id)
   WHERE e.expected IS NULL OR a.shown IS NULL) AS analytics_active_users,
  (SELECT count(*) FROM open_orders AS e FULL JOIN analytics_open_orders AS a USING (id)
   WHERE (e.type, e.amount, e.currency) IS DISTINCT FROM (a.type, a.amount, a.currency))
   AS analytics_open_orders
"""
COMPARED = COMPARED_TABLES + "SELECT" + COMPARED_COLUMNS


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What analytics needs of an order from its `Created` event."""

    order_type: str
    amount: int
    currency: str


def _day(at: datetime) -> date:
    """The UTC day of a moment."""
    return at.astimezone(UTC).date()


class AnalyticsView(PagedView):
    """Daily counts and volumes per currency and metric, the customers, and who was active when."""

    tables = ("analytics_daily", "analytics_customers", "analytics_active_users",
              "analytics_open_orders")
    schema_statements = (
        # metric: an order type (succeeded orders), 'fee' (fee lines) or 'failed' (orders).
        """CREATE TABLE IF NOT EXISTS analytics_daily (
            day date NOT NULL, currency text NOT NULL, metric text NOT NULL,
            count bigint NOT NULL, volume bigint NOT NULL,
            PRIMARY KEY (day, currency, metric))""",
        """CREATE TABLE IF NOT EXISTS analytics_customers (
            wallet_id uuid PRIMARY KEY, user_id uuid NOT NULL, registered_on date NOT NULL)""",
        """CREATE INDEX IF NOT EXISTS analytics_customers_day_idx
            ON analytics_customers (registered_on)""",
        """CREATE TABLE IF NOT EXISTS analytics_active_users (
            day date NOT NULL, user_id uuid NOT NULL, PRIMARY KEY (day, user_id))""",
        """CREATE TABLE IF NOT EXISTS analytics_open_orders (
            id uuid PRIMARY KEY, type text NOT NULL, amount bigint NOT NULL,
            currency text NOT NULL)""",
    )

    def start_page(self) -> None:
        self._created: dict[UUID, OrderFacts] = {}
        # Outcomes of orders created before this page: (order id, metric or None, day).
        self._outcomes_of_older: list[tuple[UUID, bool, date]] = []
        self._daily: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0])
        self._customers: list[tuple[UUID, UUID, date]] = []
        self._active: set[tuple[date, UUID]] = set()

    # Collecting a page (called by the projection, in log order)

    def order_created(self, order_id: UUID, facts: OrderFacts) -> None:
        self._created[order_id] = facts

    def order_ended(self, order_id: UUID, *, succeeded: bool, at: datetime) -> None:
        facts = self._created.pop(order_id, None)
        if facts is None:
            self._outcomes_of_older.append((order_id, succeeded, _day(at)))
        else:
            self._count(_day(at), facts, succeeded=succeeded)

    def fee_paid(self, amount: int, currency: str, at: datetime) -> None:
        totals = self._daily[_day(at), currency, FEES]
        totals[0] += 1
        totals[1] += amount

    def customer_registered(self, wallet_id: UUID, user_id: UUID, at: datetime) -> None:
        self._customers.append((wallet_id, user_id, _day(at)))

    def wallet_moved(self, wallet_id: UUID, at: datetime) -> None:
        self._active.add((_day(at), wallet_id))

    def _count(self, day: date, facts: OrderFacts, *, succeeded: bool) -> None:
        totals = self._daily[day, facts.currency, facts.order_type if succeeded else FAILED]
        totals[0] += 1
        totals[1] += facts.amount

    # Writing a page

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        if self._outcomes_of_older:
            cursor.execute("DELETE FROM analytics_open_orders WHERE id = ANY(%s) "
                           "RETURNING id, type, amount, currency",
                           ([order_id for order_id, _, _ in self._outcomes_of_older],))
            known = {row["id"]: OrderFacts(row["type"], row["amount"], row["currency"])
                     for row in cursor.fetchall()}
            for order_id, succeeded, day in self._outcomes_of_older:
                if order_id in known:  # else created before analytics could see it: none
                    self._count(day, known[order_id], succeeded=succeeded)
        if self._created:  # still open at the end of the page: their outcome comes later
            cursor.execute(
                "INSERT INTO analytics_open_orders (id, type, amount, currency) "
                "SELECT * FROM unnest(%s::uuid[], %s::text[], %s::bigint[], %s::text[]) "
                "ON CONFLICT (id) DO NOTHING",
                (list(self._created), [f.order_type for f in self._created.values()],
                 [f.amount for f in self._created.values()],
                 [f.currency for f in self._created.values()]))
        if self._daily:
            keys = sorted(self._daily)  # in key order, as every writer of these rows locks them
            cursor.execute(
                "INSERT INTO analytics_daily (day, currency, metric, count, volume) "
                "SELECT * FROM unnest(%s::date[], %s::text[], %s::text[], %s::bigint[], "
                "%s::bigint[]) ON CONFLICT (day, currency, metric) DO UPDATE SET "
                "count = analytics_daily.count + EXCLUDED.count, "
                "volume = analytics_daily.volume + EXCLUDED.volume",
                ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
                 [self._daily[k][0] for k in keys], [self._daily[k][1] for k in keys]))
        if self._customers:
            cursor.execute(
                "INSERT INTO analytics_customers (wallet_id, user_id, registered_on) "
                "SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::date[]) "
                "ON CONFLICT (wallet_id) DO NOTHING",
                ([c[0] for c in self._customers], [c[1] for c in self._customers],
                 [c[2] for c in self._customers]))
        if self._active:
            active = sorted(self._active)
            # Only customers' wallets count: a biller's or an operator's is no user.
            cursor.execute(
                "INSERT INTO analytics_active_users (day, user_id) "
                "SELECT DISTINCT a.day, c.user_id FROM unnest(%s::date[], %s::uuid[]) "
                "AS a(day, wallet_id) JOIN analytics_customers AS c USING (wallet_id) "
                "ORDER BY 1, 2 ON CONFLICT DO NOTHING",
                (arrays.dates(a[0] for a in active), arrays.uuids(a[1] for a in active)))

    # The check against the events

    def checks(self, application_name: str, *, with_orders_of: WalletView | None = None,
               books: Books | None = None) -> list[Check]:
        """Every table, recomputed from the events up to the view's position; given the wallet
        view, that view's payment orders and ledger accounts too, in the same statement where
        both views stand at the same position (its own checks then leave them out), and given
        `books`, whether the log's journal entries balance, answered there on the way."""
        if with_orders_of is None:
            return [partial(self._drift, application_name)]
        return [partial(self._drift_with_orders, with_orders_of, application_name, books=books)]

    def _drift(self, application_name: str, conn: Connection[DictRow],
               states: StoredStates) -> list[str]:
        position = self.position_in(conn, application_name)
        if _wallet_view_position(conn, application_name) == position:
            found = _differences(conn, SQL(ENDED_FROM_STATES + CUSTOMERS_AND_LINES + COMPARED).format(
                ended=states([TOPICS["succeeded"], TOPICS["failed"]], position),
                registrations=states([TOPICS["registered"]], position), **_literals(TOPICS)))
            if not found:
                return []
        return self._from_events(conn, states, position)

    def _drift_with_orders(self, wallets: WalletView, application_name: str,
                           conn: Connection[DictRow], states: StoredStates, *,
                           books: Books | None = None) -> list[str]:
        position = self.position_in(conn, application_name)
        if wallets.position_in(conn, application_name) != position:
            return (wallets.orders_drift(application_name, conn, states)
                    + self._from_events(conn, states, position))
        row = _with_books(conn, states, position, books) if books is not None else None
        if row is None:
            row = conn.execute(SQL(ORDERS_EXPECTED + ENDED_FROM_ORDER_EVENTS + CUSTOMERS_AND_LINES
                                   + COMPARED_TABLES + "SELECT" + ORDERS_COMPARED + ","
                                   + COMPARED_COLUMNS).format(
                events=states(list(ORDER_TOPICS.values()), position),
                registrations=states([TOPICS["registered"]], position),
                **_literals({**ORDER_TOPICS, **TOPICS}))).fetchone()
        assert row is not None
        orders = {table: row.pop(table) for table in ("payment_orders", "ledger_accounts")}
        return differences(orders) + (
            self._from_events(conn, states, position) if differences(row) else [])

    def _from_events(self, conn: Connection[DictRow], states: StoredStates,
                     position: int) -> list[str]:
        """Every table compared with the events themselves, whatever the wallet view's own
        check finds (where the quicker comparison found a difference, or the views stand apart)."""
        return _differences(conn, SQL(FROM_EVENTS + COMPARED).format(
            events=states(list(TOPICS.values()), position), **_literals(TOPICS)))

    # Queries

    def daily(self, since: date, until: date) -> list[dict[str, Any]]:
        """Every (day, currency, metric) row between the two days, both included."""
        return self.query("SELECT * FROM analytics_daily WHERE day BETWEEN %s AND %s "
                          "ORDER BY day, currency, metric", (since, until))

    def new_users(self, since: date, until: date) -> dict[date, int]:
        return {row["day"]: row["users"] for row in self.query(
            "SELECT registered_on AS day, count(*) AS users FROM analytics_customers "
            "WHERE registered_on BETWEEN %s AND %s GROUP BY 1", (since, until))}

    def active_users(self, since: date, until: date) -> tuple[dict[date, int], int]:
        """Active customers per day, and how many different ones over the whole period."""
        per_day = {row["day"]: row["users"] for row in self.query(
            "SELECT day, count(*) AS users FROM analytics_active_users "
            "WHERE day BETWEEN %s AND %s GROUP BY 1", (since, until))}
        rows = self.query("SELECT count(DISTINCT user_id) AS users FROM analytics_active_users "
                          "WHERE day BETWEEN %s AND %s", (since, until))
        return per_day, int(rows[0]["users"]) if rows else 0


class AnalyticsProjection(Projection[AnalyticsView]):
    """Turns payment orders, wallet lines and registrations into the daily business figures."""

    name = "analytics_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events this read model does not show."""

    @process_event.register
    def _(self, e: PaymentOrder.Created, tracking: Tracking) -> None:
        self.view.order_created(e.originator_id, OrderFacts(e.order_type, e.amount, e.currency))

    @process_event.register
    def _(self, e: PaymentOrder.Succeeded, tracking: Tracking) -> None:
        self.view.order_ended(e.originator_id, succeeded=True, at=e.timestamp)

    @process_event.register
    def _(self, e: PaymentOrder.Failed, tracking: Tracking) -> None:
        self.view.order_ended(e.originator_id, succeeded=False, at=e.timestamp)

    @process_event.register
    def _(self, e: User.Registered, tracking: Tracking) -> None:
        if e.wallet_id is not None:
            self.view.customer_registered(e.wallet_id, e.originator_id, e.timestamp)

    @process_event.register
    def _(self, e: Wallet.Credited, tracking: Tracking) -> None:
        self.view.wallet_moved(e.originator_id, e.timestamp)

    @process_event.register
    def _(self, e: Wallet.Debited, tracking: Tracking) -> None:
        self._paid(e.originator_id, e.entry_type, e.amount, e.currency, e.timestamp)

    @process_event.register
    def _(self, e: Wallet.Captured, tracking: Tracking) -> None:
        self._paid(e.originator_id, e.entry_type, e.amount, e.currency, e.timestamp)

    def _paid(self, wallet_id: UUID, entry_type: str, amount: int, currency: str,
              at: datetime) -> None:
        self.view.wallet_moved(wallet_id, at)
        if entry_type == TransactionType.FEE:
            self.view.fee_paid(amount, currency, at)


def _wallet_view_position(conn: Connection[DictRow], application_name: str) -> int:
    """The position the wallet read model has reached, as `conn` sees it."""
    row = conn.execute(SQL("SELECT max(notification_id) AS position FROM {} "
                           "WHERE application_name = %s").format(
        Identifier(f"{WalletProjection.name}_tracking")), (application_name,)).fetchone()
    return int(row["position"] or 0) if row else 0


def _with_books(conn: Connection[DictRow], states: StoredStates, position: int,
                books: Books) -> DictRow | None:
    """The payment orders' and analytics' comparison with the books answered on the way (in
    `books`); None, and the books left unanswered, where some event cannot be read so: the
    checks then run apart and each says what it says alone."""
    try:
        with conn.transaction():  # a savepoint: the snapshot stays usable
            row = conn.execute(SQL(
                ORDERS_EXPECTED_AND_LEGS + ENDED_FROM_ORDER_EVENTS + LOGGED_CUSTOMERS + LINES
                + COMPARED_TABLES + "SELECT" + ORDERS_COMPARED + "," + COMPARED_COLUMNS + ","
                + BOOKS_COMPARED).format(
                events=states([*ORDER_TOPICS.values(), TOPICS["registered"]], EVERY_POSITION),
                shown=Literal(position), other=Literal(TOPICS["registered"]),
                **_literals({**ORDER_TOPICS, **TOPICS}))).fetchone()
    except psycopg.DataError:
        return None
    assert row is not None
    books.balanced = bool(row.pop("balanced"))
    return row


def _differences(conn: Connection[DictRow], statement: Composed) -> list[str]:
    row = conn.execute(statement).fetchone()
    assert row is not None
    return differences(row)


def _literals(topics: dict[str, str]) -> dict[str, Literal]:
    return {name: Literal(topic) for name, topic in topics.items()}


def report(view: AnalyticsView, since: date, until: date) -> dict[str, Any]:
    """The figures of every day from `since` to `until` (empty days included) and their totals,
    amounts per currency in minor units, as `GET /v1/admin/analytics` answers them."""
    days = {since + timedelta(days=n): _empty_day() for n in range((until - since).days + 1)}
    totals = _empty_day()
    for row in view.daily(since, until):
        for figures in (days[row["day"]], totals):
            _add(figures, row["metric"], row["currency"], row["count"], row["volume"])
    for day, users in view.new_users(since, until).items():
        days[day]["new_users"] = users
        totals["new_users"] += users
    active, totals["active_users"] = view.active_users(since, until)
    for day, users in active.items():
        days[day]["active_users"] = users
    return {"from": since, "to": until,
            "days": [{"date": day, **figures} for day, figures in days.items()],
            "totals": totals}


def _empty_day() -> dict[str, Any]:
    return {"by_type": {}, "fees": {}, "fee_count": 0, "new_users": 0, "active_users": 0,
            "payments": 0, "failed": 0, "failed_volume": {}}


def _add(figures: dict[str, Any], metric: str, currency: str, count: int, volume: int) -> None:
    """Add one daily row's count and volume to a day's (or the period's) figures."""
    if metric == FEES:
        figures["fee_count"] += count
        figures["fees"][currency] = figures["fees"].get(currency, 0) + volume
    elif metric == FAILED:
        figures["failed"] += count
        figures["failed_volume"][currency] = figures["failed_volume"].get(currency, 0) + volume
    else:
        figures["payments"] += count
        by_type = figures["by_type"].setdefault(metric, {"count": 0, "volume": {}})
        by_type["count"] += count
        by_type["volume"][currency] = by_type["volume"].get(currency, 0) + volume
