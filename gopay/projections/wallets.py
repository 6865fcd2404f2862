"""The wallet read model: balances, per-wallet history with balance_after, payment orders, ledger totals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, LiteralString
from uuid import UUID

import orjson
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from eventsourcing.utils import get_topic
from psycopg import Connection, Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Literal

from gopay.aggregates.payment_order import PaymentOrder
from gopay.aggregates.wallet import Wallet
from gopay.projections import arrays
from gopay.projections.view import Check, PagedView, StoredStates

# The events this read model shows, by the names its checks below give them.
WALLET_TOPICS = {name: get_topic(cls) for name, cls in (
    ("opened", Wallet.Opened), ("credited", Wallet.Credited), ("debited", Wallet.Debited),
    ("captured", Wallet.Captured), ("held", Wallet.Held), ("released", Wallet.Released),
    ("frozen", Wallet.Frozen), ("unfrozen", Wallet.Unfrozen))}
ORDER_TOPICS = {name: get_topic(cls) for name, cls in (
    ("created", PaymentOrder.Created), ("planned", PaymentOrder.Planned),
    ("noted", PaymentOrder.PspReferenceNoted), ("marked_pending", PaymentOrder.MarkedPending),
    ("succeeded", PaymentOrder.Succeeded), ("reversed", PaymentOrder.Reversed),
    ("failed", PaymentOrder.Failed))}

# The read model recomputed from the events' stored JSON (each event parsed once, in a
# subquery that OFFSET 0 keeps from being folded into its uses, and its fields taken from the
# parsed value with operators: a fifth cheaper than jsonb_to_record, which copies every nested
# object; a JSON null is NULL, as there) and compared row by row: how many rows of each table differ. It
# says in SQL what the projection below says in Python (upcasters included: none of them
# touches these fields), and must change with it. Two statements, one per aggregate type, so
# that the checks of a store can run side by side. Ids are kept as the events' text until they
# are grouped (an order's parties, an account's postings) and read as uuids once per row
# compared, not once per event: PostgreSQL reads a uuid byte by byte with strtoul.
WALLETS_DRIFT = """
WITH events AS MATERIALIZED (
  SELECT e.originator_id AS wallet_id, e.originator_version AS version, e.topic,
    (e.state #>> '{{owner_id,_data_}}')::uuid AS owner_id, e.state ->> 'currency' AS currency,
    (coalesce(nullif(e.state -> 'entry_id', 'null'), nullif(e.state -> 'hold_id', 'null'))
      ->> '_data_')::uuid AS entry_id,
    e.state ->> 'entry_type' AS entry_type, (e.state ->> 'amount')::bigint AS amount,
    (e.state ->> 'balance_after')::bigint AS balance_after,
    e.state ->> 'counterparty' AS counterparty, e.state ->> 'reference' AS reference,
    (e.state #>> '{{timestamp,_data_}}')::timestamptz AS created_at
  FROM ({events} OFFSET 0) AS e),
wallets_expected AS (
  SELECT wallet_id, min(owner_id::text) FILTER (WHERE topic = {opened}) AS owner_id,
    min(currency) FILTER (WHERE topic = {opened}) AS currency,
    coalesce((array_agg(balance_after ORDER BY version DESC)
      FILTER (WHERE topic IN ({credited}, {debited}, {captured})))[1], 0) AS balance,
    coalesce(sum(CASE WHEN topic = {held} THEN amount ELSE -amount END)
      FILTER (WHERE topic IN ({held}, {released}, {captured})), 0) AS held,
    coalesce((array_agg(topic = {frozen} ORDER BY version DESC)
      FILTER (WHERE topic IN ({frozen}, {unfrozen})))[1], false) AS frozen
  FROM events GROUP BY wallet_id),
history_expected AS (
  SELECT wallet_id, version AS seq, entry_id, entry_type AS type,
    CASE WHEN topic = {credited} THEN 'credit' ELSE 'debit' END AS direction, amount, currency,
    'succeeded' AS status, counterparty, reference, created_at, balance_after
  FROM events WHERE topic IN ({credited}, {debited}, {captured}))
SELECT
  (SELECT count(*) FROM wallets_expected AS e FULL JOIN wallets AS w USING (wallet_id)
   WHERE (e.owner_id::uuid, e.currency, e.balance, e.held, e.frozen)
   IS DISTINCT FROM (w.owner_id, w.currency, w.balance, w.held, w.frozen)) AS wallets,
  (SELECT count(*) FROM history_expected AS e FULL JOIN wallet_transactions AS t
   USING (wallet_id, seq)
   WHERE (e.entry_id, e.type, e.direction, e.amount, e.currency, e.status, e.counterparty,
   e.reference, e.created_at, e.balance_after) IS DISTINCT FROM (t.entry_id, t.type,
   t.direction, t.amount, t.currency, t.status, t.counterparty, t.reference, t.created_at,
   t.balance_after)) AS wallet_transactions
"""
# The order events' part is in two pieces, what the events say (ORDERS_EXPECTED: the `events`
# CTE with each order event's fields, then the expected rows) and the comparison's columns
# (ORDERS_COMPARED), so that analytics' check can join the same statement
# (`AnalyticsView.checks`): the order events' JSON is then parsed once for both.
ORDER_FIELDS = """e.originator_id AS id, e.originator_version AS version, e.topic,
    e.state ->> 'order_type' AS order_type,
    e.state #>> '{{initiated_by,_data_}}' AS initiated_by,
    e.state #>> '{{payer_wallet_id,_data_}}' AS payer,
    e.state #>> '{{payee_wallet_id,_data_}}' AS payee,
    (e.state ->> 'amount')::bigint AS amount, e.state ->> 'currency' AS currency,
    e.state ->> 'note' AS note, e.state ->> 'psp_reference' AS psp_reference,
    e.state ->> 'reason' AS reason,"""
ORDERS_FROM_EVENTS = """
orders_expected AS (
  SELECT id, min(order_type) FILTER (WHERE topic = {created}) AS type,
    coalesce((array_agg(CASE topic WHEN {succeeded} THEN 'succeeded'
      WHEN {reversed} THEN 'reversed' WHEN {failed} THEN 'failed' ELSE 'pending' END
      ORDER BY version DESC) FILTER (WHERE topic IN ({planned}, {marked_pending},
      {succeeded}, {reversed}, {failed})))[1], 'created') AS status,
    min(initiated_by) FILTER (WHERE topic = {created}) AS initiated_by,
    min(payer) FILTER (WHERE topic = {created}) AS payer,
    min(payee) FILTER (WHERE topic = {created}) AS payee,
    min(amount) FILTER (WHERE topic = {created}) AS amount,
    min(currency) FILTER (WHERE topic = {created}) AS currency,
    min(note) FILTER (WHERE topic = {created}) AS note,
    (array_agg(psp_reference ORDER BY version DESC) FILTER (WHERE topic IN ({noted},
      {marked_pending}) AND psp_reference IS NOT NULL))[1] AS psp_reference,
    (array_agg(reason ORDER BY version DESC) FILTER (WHERE topic = {failed}))[1]
      AS failure_reason,
    (array_agg(postings ORDER BY version DESC)
      FILTER (WHERE topic = {succeeded} AND postings <> '[]'))[1] AS postings,
    min(at) FILTER (WHERE topic = {created}) AS created_at,
    (array_agg(at ORDER BY version DESC))[1] AS updated_at,
    -- the UTC days it ended, for analytics' check (`AnalyticsView.checks`), not compared here
    min((at AT TIME ZONE 'UTC')::date) FILTER (WHERE topic = {succeeded}) AS succeeded_on,
    min((at AT TIME ZONE 'UTC')::date) FILTER (WHERE topic = {failed}) AS failed_on
  FROM events GROUP BY id),"""
ORDERS_EXPECTED = """
WITH events AS MATERIALIZED (
  SELECT """ + ORDER_FIELDS + """ nullif(e.state -> 'postings', 'null') AS postings,
    (e.state #>> '{{timestamp,_data_}}')::timestamptz AS at
  FROM ({events} OFFSET 0) AS e),""" + ORDERS_FROM_EVENTS + """
accounts_expected AS (
  SELECT p.account_id, p.currency, sum(p.amount) AS balance
  FROM events AS e,
    jsonb_to_recordset(e.postings) AS p(account_id text, amount bigint, currency text)
  WHERE e.topic IN ({succeeded}, {reversed}) GROUP BY 1, 2)"""
# The same, with the books on the way, for the audit (`gopay/reconcile/audit.py`): the order
# events of the whole log are read (`logged`), the read model is compared with those up to
# its position ({shown}), and every journal entry's legs (`legs`, read once for both) must
# sum to zero per currency. The books' legs are read as the audit reads them alone
# (`books_balance`: the postings as stored, amounts as numbers), the ledger accounts' as
# ORDERS_EXPECTED reads them (amounts as bigint, postings that are JSON null as none): where
# the two would differ, on a value one of them cannot read, this statement fails and the
# checks run apart. Saves the books' own pass over the log and second parse of every entry.
# The events of one more topic ({other}: analytics' registrations) may come in the same pass;
# they keep their state (`other_state`) for the caller's own expressions and are no orders.
ORDERS_EXPECTED_AND_LEGS = """
WITH logged AS MATERIALIZED (
  SELECT e.notification_id AS position, """ + ORDER_FIELDS + """
    e.state -> 'postings' AS stored_postings,
    (e.state #>> '{{timestamp,_data_}}')::timestamptz AS at,
    CASE WHEN e.topic = {other} THEN e.state END AS other_state
  FROM ({events} OFFSET 0) AS e),
events AS NOT MATERIALIZED (
  SELECT *, nullif(stored_postings, 'null') AS postings FROM logged
  WHERE position <= {shown} AND topic <> {other}),"""  \
    + ORDERS_FROM_EVENTS + """
legs AS MATERIALIZED (
  SELECT e.position, p.account_id, p.amount, p.currency
  FROM logged AS e, jsonb_to_recordset(e.stored_postings)
    AS p(account_id text, amount text, currency text)
  WHERE e.topic IN ({succeeded}, {reversed})),
accounts_expected AS (
  SELECT account_id, currency, sum(amount::bigint) AS balance
  FROM legs WHERE position <= {shown} GROUP BY 1, 2)"""
ORDERS_COMPARED = """
  (SELECT count(*) FROM orders_expected AS e FULL JOIN payment_orders AS o USING (id)
   WHERE (e.type, e.status, e.initiated_by::uuid, e.payer::uuid, e.payee::uuid, e.amount,
   e.currency, e.note, e.psp_reference, e.failure_reason, e.postings, e.created_at,
   e.updated_at) IS DISTINCT FROM (o.type, o.status, o.initiated_by, o.payer_wallet_id,
   o.payee_wallet_id, o.amount, o.currency, o.note, o.psp_reference, o.failure_reason,
   o.postings, o.created_at, o.updated_at)) AS payment_orders,
  (SELECT count(*) FROM (SELECT account_id::uuid AS account_id, currency, balance
   FROM accounts_expected WHERE balance <> 0) AS e
   FULL JOIN (SELECT * FROM ledger_accounts WHERE balance <> 0) AS a USING (account_id, currency)
   WHERE e.balance IS DISTINCT FROM a.balance) AS ledger_accounts"""
ORDERS_DRIFT = ORDERS_EXPECTED + "\nSELECT" + ORDERS_COMPARED
# Whether every journal entry sums to zero per currency (an entry's legs, from `legs`).
BOOKS_COMPARED = """
  NOT EXISTS (SELECT FROM legs GROUP BY position, currency HAVING sum(amount::numeric) <> 0)
  AS balanced"""
# Every position of the log, for statements that read it to the end.
EVERY_POSITION = 2**63 - 1


@dataclass
class Books:
    """Whether every journal entry in the log sums to zero per currency, when a check answered
    it on its way (ORDERS_EXPECTED_AND_LEGS); None where it did not, and the audit asks alone."""

    balanced: bool | None = None


def differences(counts: dict[str, int]) -> list[str]:
    """What a comparison's row of counts per table says, one line per table that differs."""
    return [f"the read model's {table} differ from the events in {rows} rows"
            for table, rows in counts.items() if rows]


def _copy(cursor: Cursor[DictRow], table: LiteralString, rows: Iterable[Sequence[Any]]) -> None:
    """Append these rows to `table` ("name (columns)") with COPY, in the page's transaction."""
    rows = list(rows)
    if rows:
        with cursor.copy(SQL("COPY {} FROM STDIN").format(SQL(table))) as copy:
            for row in rows:
                copy.write_row(row)


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
        # Orders created in this page, as their rows (later changes in the page folded in),
        # and changes of orders created before it, folded per order in log order.
        self._orders_created: dict[UUID, list[Any]] = {}
        self._order_changes: dict[UUID, list[Any]] = {}
        self._ledger_deltas: dict[tuple[UUID, str], int] = defaultdict(int)
        self._accounts: dict[str, UUID] = {}  # account ids as postings spell them, parsed once

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
        self._orders_created[order_id] = [order_id, order_type, "created", initiated_by, payer,
                                          payee, amount, currency, note, None, None, None, at, at]

    def order_changed(self, order_id: UUID, status: str | None, at: datetime, *,
                      postings: list[dict[str, Any]] | None = None,
                      psp_reference: str | None = None, failure_reason: str | None = None) -> None:
        # Each change keeps what it does not say (a COALESCE): folded here in log order.
        change = (status, orjson.dumps(postings).decode() if postings else None, psp_reference,
                  failure_reason)
        created = self._orders_created.get(order_id)
        if created is not None:
            for column, value in zip((2, 11, 9, 10), change, strict=True):
                if value is not None:
                    created[column] = value
            created[13] = at
        else:
            folded = self._order_changes.setdefault(order_id, [None, None, None, None, at])
            for column, value in enumerate(change):
                if value is not None:
                    folded[column] = value
            folded[4] = at
        self.ledger_postings(postings or ())

    def ledger_postings(self, postings: Iterable[dict[str, Any]]) -> None:
        """A journal entry's legs, added to every account's ledger balance."""
        for posting in postings:
            account = self._accounts.get(posting["account_id"])
            if account is None:
                account = self._accounts[posting["account_id"]] = UUID(posting["account_id"])
            self._ledger_deltas[account, posting["currency"]] += posting["amount"]

    # Writing a page

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        # New rows by COPY, changes as one statement per table over arrays: a rebuild writes
        # tens of thousands of rows a page, and a statement per row cost most of its time.
        _copy(cursor, "wallets (wallet_id, owner_id, currency, version, opened_at)",
              self._opened)
        if self._wallet_changes:
            changes = self._wallet_changes
            cursor.execute(
                "UPDATE wallets AS w SET balance = COALESCE(c.balance, w.balance), "
                "held = w.held + c.held_delta, frozen = COALESCE(c.frozen, w.frozen), "
                "version = c.version FROM unnest(%s::uuid[], %s::bigint[], %s::bigint[], "
                "%s::boolean[], %s::bigint[]) AS c(wallet_id, balance, held_delta, frozen, version) "
                "WHERE w.wallet_id = c.wallet_id",
                (arrays.uuids(changes), arrays.integers(c.get("balance") for c in changes.values()),
                 arrays.integers(c["held_delta"] for c in changes.values()),
                 arrays.booleans(c.get("frozen") for c in changes.values()),
                 arrays.integers(c["version"] for c in changes.values())))
        _copy(cursor, "wallet_transactions (wallet_id, seq, entry_id, type, direction, amount, "
              "currency, status, counterparty, reference, created_at, balance_after)",
              self._history)
        _copy(cursor, "payment_orders (id, type, status, initiated_by, payer_wallet_id, "
              "payee_wallet_id, amount, currency, note, psp_reference, failure_reason, postings, "
              "created_at, updated_at)", self._orders_created.values())
        if self._order_changes:
            folded = list(self._order_changes.values())
            cursor.execute(
                "UPDATE payment_orders AS o SET status = COALESCE(c.status, o.status), "
                "postings = COALESCE(c.postings::jsonb, o.postings), "
                "psp_reference = COALESCE(c.psp_reference, o.psp_reference), "
                "failure_reason = COALESCE(c.failure_reason, o.failure_reason), "
                "updated_at = c.updated_at FROM unnest(%s::uuid[], %s::text[], %s::text[], "
                "%s::text[], %s::text[], %s::timestamptz[]) AS c(id, status, postings, "
                "psp_reference, failure_reason, updated_at) WHERE o.id = c.id",
                (list(self._order_changes), *([f[i] for f in folded] for i in range(5))))
        deltas = [(account, currency, delta)
                  for (account, currency), delta in self._ledger_deltas.items() if delta]
        if deltas:
            cursor.execute(  # in key order, as every writer of these rows locks them
                "INSERT INTO ledger_accounts (account_id, currency, balance) "
                "SELECT * FROM unnest(%s::uuid[], %s::text[], %s::bigint[]) ORDER BY 1, 2 "
                "ON CONFLICT (account_id, currency) "
                "DO UPDATE SET balance = ledger_accounts.balance + EXCLUDED.balance",
                (arrays.uuids(d[0] for d in deltas), arrays.texts(d[1] for d in deltas),
                 arrays.integers(d[2] for d in deltas)))
            # An account back at zero has no row, as one whose moves netted out within a page
            # never had one: the rows do not depend on where pages happened to end.
            cursor.execute(
                "DELETE FROM ledger_accounts WHERE balance = 0 AND (account_id, currency) IN "
                "(SELECT * FROM unnest(%s::uuid[], %s::text[]))",
                (arrays.uuids(d[0] for d in deltas), arrays.texts(d[1] for d in deltas)))

    # The check against the events

    def checks(self, application_name: str, *, orders: bool = True) -> list[Check]:
        """The wallets with their histories, and the payment orders with the ledger accounts
        (unless `orders` is false: another check compares them, as analytics' does)."""
        return [partial(self._drift, WALLETS_DRIFT, WALLET_TOPICS, application_name),
                *([partial(self.orders_drift, application_name)] if orders else [])]

    def orders_drift(self, application_name: str, conn: Connection[DictRow],
                     states: StoredStates) -> list[str]:
        """The payment orders and the ledger accounts compared with the events."""
        return self._drift(ORDERS_DRIFT, ORDER_TOPICS, application_name, conn, states)

    def _drift(self, statement: LiteralString, topics: dict[str, str], application_name: str,
               conn: Connection[DictRow], states: StoredStates) -> list[str]:
        """How many rows of each table differ from the events up to the view's position."""
        events = states(list(topics.values()), self.position_in(conn, application_name))
        row = conn.execute(SQL(statement).format(
            events=events, **{name: Literal(topic) for name, topic in topics.items()})).fetchone()
        assert row is not None
        return differences(row)

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

    def lines_between(self, wallet_id: UUID, start: datetime, end: datetime
                      ) -> tuple[int, list[dict[str, Any]]]:
        """The balance the wallet had at `start`, and its lines from `start` (included) to
        `end` (excluded), oldest first: a statement's opening balance and its lines."""
        before = self.query(
            "SELECT balance_after FROM wallet_transactions WHERE wallet_id = %s "
            "AND created_at < %s ORDER BY seq DESC LIMIT 1", (wallet_id, start))
        lines = self.query(
            "SELECT * FROM wallet_transactions WHERE wallet_id = %s AND created_at >= %s "
            "AND created_at < %s ORDER BY seq", (wallet_id, start, end))
        return (before[0]["balance_after"] if before else 0), lines

    def sales_by_day(self, wallet_id: UUID, start: datetime, end: datetime
                     ) -> list[dict[str, Any]]:
        """A merchant wallet's QR payments received, refunds given and the fees GoPay took on
        them, per UTC day from `start` to `end` (excluded); days with none are left out."""
        # A fee line carries the id of the payment (or refund) it was taken on, booked in the
        # same commit (a day either side covers one that straddles midnight); fees on anything
        # else (a payout, say) are not a cost of sales.
        return self.query(
            "WITH lines AS (SELECT * FROM wallet_transactions WHERE wallet_id = %(wallet)s "
            "AND created_at >= %(start)s - interval '1 day' "
            "AND created_at < %(end)s + interval '1 day'), "
            "sales AS (SELECT DISTINCT entry_id FROM lines WHERE (type = 'qr_payment' "
            "AND direction = 'credit') OR (type = 'refund' AND direction = 'debit')) "
            "SELECT (l.created_at AT TIME ZONE 'UTC')::date AS day, "
            "count(*) FILTER (WHERE l.type = 'qr_payment' AND l.direction = 'credit') AS count, "
            "coalesce(sum(l.amount) FILTER (WHERE l.type = 'qr_payment' "
            "AND l.direction = 'credit'), 0)::bigint AS gross, "
            "coalesce(sum(l.amount) FILTER (WHERE l.type = 'refund' AND l.direction = 'debit'), "
            "0)::bigint AS refunds, "
            "coalesce(sum(l.amount) FILTER (WHERE l.type = 'fee' AND l.direction = 'debit' "
            "AND s.entry_id IS NOT NULL), 0)::bigint AS fees "
            "FROM lines AS l LEFT JOIN sales AS s ON s.entry_id = l.entry_id AND l.type = 'fee' "
            "WHERE l.created_at >= %(start)s AND l.created_at < %(end)s "
            "GROUP BY 1 ORDER BY 1", {"wallet": wallet_id, "start": start, "end": end})

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
