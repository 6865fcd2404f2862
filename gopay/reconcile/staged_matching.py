"""Matching in PostgreSQL: the file's lines copied into a temporary table as they are read and
checked, then set against the PSP's side of the ledger (`psp_orders`) by a few joins.

A million lines cost Python little more than reading them: the database finds the few that
differ (and the orders no line named), and only those come back, to be explained by the same
rules as the streaming `Matcher` (`finding_for`). Nothing of the file is held in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any, LiteralString

from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor, postgres, sql
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.rows import TupleRow, tuple_row

from gopay.aggregates.reconciliation import ItemKind
from gopay.projections.psp_orders import KNOWN_TO_PSP, PspOrderView
from gopay.reconcile.matching import (
    ExpectedOrder,
    Finding,
    Matcher,
    finding_for,
    order_key,
    order_missing_in_psp,
)
from gopay.reconcile.settlement import SettlementLine

# Sorts and hashes of a million lines fit in memory (per operation: PostgreSQL's default of
# 4 MB would spill them to temporary files).
WORK_MEM = "64MB"
# Findings fetched at a time from the server-side cursor.
ROWS_AT_A_TIME = 2_000

SETTLEMENT_LINES = """CREATE TEMPORARY TABLE settlement_lines (
    line integer NOT NULL, psp_reference text COLLATE "C" NOT NULL,
    merchant_reference text NOT NULL, type text NOT NULL, amount bigint NOT NULL,
    currency text NOT NULL, fee bigint NOT NULL, status text NOT NULL,
    settled_at timestamptz NOT NULL, order_id uuid) ON COMMIT DROP"""
COPY_LINES = "COPY settlement_lines FROM STDIN (FORMAT BINARY)"
LINE_TYPES = ("int4", "text", "text", "text", "int8", "text", "int8", "text", "timestamptz", "uuid")

# The file's totals by UTC hour, type, status and currency: its days, its lines per hour,
# and the report's totals of the file.
FILE_TOTALS = """SELECT (settled_at AT TIME ZONE 'UTC')::date AS day,
    extract(hour FROM settled_at AT TIME ZONE 'UTC')::integer AS hour, type, status, currency,
    count(*)::integer, sum(amount), sum(fee)
    FROM settlement_lines GROUP BY 1, 2, 3, 4, 5"""

# A line names its order when it is the first line of its PSP reference, of the order's
# type, and GoPay knows the order under no other reference (`matching.names`).
NAMES = """(coalesce(r.first, l.line) = l.line AND o.kind = l.type
    AND (coalesce(o.psp_reference, '') = '' OR o.psp_reference = l.psp_reference))"""
# PSP references on more than one line, with the first of them.
REPEATED_REFERENCES = """CREATE TEMPORARY TABLE repeated_references ON COMMIT DROP AS
    SELECT psp_reference, min(line) AS first FROM settlement_lines
    GROUP BY psp_reference HAVING count(*) > 1"""
# Orders more than one line is about, with the first line that names each (if any).
REPEATED_ORDERS = f"""CREATE TEMPORARY TABLE repeated_orders ON COMMIT DROP AS
    SELECT l.order_id, min(l.line) FILTER (WHERE {NAMES}) AS first
    FROM settlement_lines l JOIN psp_orders o ON o.order_id = l.order_id
    LEFT JOIN repeated_references r ON r.psp_reference = l.psp_reference
    WHERE l.order_id IN (SELECT order_id FROM settlement_lines WHERE order_id IS NOT NULL
                         GROUP BY order_id HAVING count(*) > 1)
    GROUP BY l.order_id"""
ORDER_COLUMNS = """o.order_id::text, o.kind, o.amount, o.currency, o.psp_fee, o.status,
    o.psp_reference, {created_at}, o.topup_id::text"""
# Every line that does not simply match, in the file's order, with its order and what tells
# duplicates apart: the first line of its reference, and the first line naming its order.
LINES_THAT_DIFFER = f"""SELECT l.line, l.psp_reference, l.merchant_reference, l.type, l.amount,
    l.currency, l.fee, l.status, l.settled_at,
    {ORDER_COLUMNS.format(created_at="NULL::timestamptz")},
    coalesce(r.first, l.line),
    CASE WHEN d.order_id IS NOT NULL THEN d.first WHEN {NAMES} THEN l.line END
    FROM settlement_lines l
    LEFT JOIN psp_orders o ON o.order_id = l.order_id
    LEFT JOIN repeated_references r ON r.psp_reference = l.psp_reference
    LEFT JOIN repeated_orders d ON d.order_id = l.order_id
    WHERE ({NAMES} AND (d.order_id IS NULL OR d.first = l.line)
           AND o.status = CASE l.status WHEN 'settled' THEN 'succeeded' ELSE 'failed' END
           AND o.amount = l.amount AND o.currency = l.currency AND o.psp_fee = l.fee) IS NOT TRUE
    ORDER BY l.line"""
# The orders of the period the PSP should know and no line names, in the order of their ids.
# The plan must hash the lines, never scan them once per order (minutes for a million), so
# the planner is told what it needs to see that: the days, written into the query (a
# cursor's parameter is a value it does not see, and it guessed a few orders), and "first of
# its reference" as two lookups in the few repeated references (`coalesce(r.first, l.line) =
# l.line` it took for one line in a million; an anti-join hashed every line twice). OFFSET 0
# keeps it from walking the whole primary key in the order of the ids to spare the final
# sort (of the few orders missing).
ORDERS_NO_LINE_NAMES = f"""SELECT * FROM (
    SELECT {ORDER_COLUMNS.format(created_at="o.created_at")}, o.order_id AS id
    FROM (SELECT * FROM psp_orders WHERE day = ANY({{days}}) AND {KNOWN_TO_PSP}) o
    WHERE NOT EXISTS (SELECT FROM settlement_lines l
        WHERE l.order_id = o.order_id AND l.type = o.kind
        AND (coalesce(o.psp_reference, '') = '' OR o.psp_reference = l.psp_reference)
        AND (l.psp_reference NOT IN (SELECT psp_reference FROM repeated_references)
             OR (l.psp_reference, l.line) IN (SELECT psp_reference, first
                                              FROM repeated_references)))
    OFFSET 0) missing ORDER BY id"""


class StagedMatcher(Matcher):
    """A `Matcher` whose comparing PostgreSQL does, in one transaction of the read side's
    primary (the temporary tables live and die with it)."""

    def __init__(self, ledger: PspOrderView, days: Sequence[str] = ()) -> None:
        super().__init__(ledger, days)
        self.datastore: PostgresDatastore = ledger.datastore

    def findings(self, lines: Iterable[SettlementLine]) -> Iterator[Finding]:
        """The findings of the file's lines in the file's order, then the orders of its days
        that no line named, by id."""
        with self.datastore.transaction(commit=False) as transaction:
            cursor = transaction.connection.cursor(row_factory=tuple_row)
            cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            cursor.execute("SET LOCAL TimeZone = 'UTC'")  # settled_at comes back in UTC
            # Every row of the server-side cursors is read: plan them for the whole result,
            # not for the first tenth (which makes a nested loop of an anti-join).
            cursor.execute("SET LOCAL cursor_tuple_fraction = 1.0")
            cursor.execute(SETTLEMENT_LINES)
            cursor.adapters.register_dumper(None, _OrderIdDumper)
            with cursor.copy(COPY_LINES) as copy:
                copy.set_types(LINE_TYPES)
                write = copy.write_row
                for line in lines:
                    write((*line, order_key(line)))
            # The planner needs only a rough idea of the lines (a sample of 3,000, not 30,000).
            cursor.execute("SET LOCAL default_statistics_target = 10")
            cursor.execute("ANALYZE settlement_lines")
            self._count_file(cursor)
            cursor.execute(REPEATED_REFERENCES)
            cursor.execute("ANALYZE repeated_references")
            cursor.execute(REPEATED_ORDERS)
            cursor.execute("ANALYZE repeated_orders")
            yield from self._lines_that_differ(cursor)
            yield from self._orders_no_line_names(cursor)

    def _count_file(self, cursor: Cursor[Any]) -> None:
        """Every line as matched, to start with: a finding moves it to its kind."""
        for day, hour, kind, status, currency, count, amount, fee in cursor.execute(FILE_TOTALS):
            self._day(day)[hour][0] += count
            totals = self._file_totals.setdefault((kind, status, currency), [0, 0, 0])
            totals[0] += count
            totals[1] += int(amount)
            totals[2] += int(fee)
            self.lines += count
            self.summary["matched"] += count

    def _lines_that_differ(self, cursor: Cursor[Any]) -> Iterator[Finding]:
        rows = _rows(cursor, "settlement_lines_that_differ", LINES_THAT_DIFFER)
        for row in rows:
            line = SettlementLine._make(row[:9])
            order = ExpectedOrder._make(row[9:18]) if row[9] is not None else None
            finding = finding_for(line, order, row[18], row[19])
            if finding is None:
                continue  # the database flags more than the rules find: a match after all
            self.summary["matched"] -= 1
            self.summary[finding.kind] += 1
            hour = self._hour(line.settled_at)
            hour[0] -= 1
            hour[1] += 1
            yield finding

    def _orders_no_line_names(self, cursor: Cursor[Any]) -> Iterator[Finding]:
        days = [date.fromisoformat(day) for day in self.period]
        query = sql.SQL(ORDERS_NO_LINE_NAMES).format(days=sql.Literal(days))
        for row in _rows(cursor, "orders_no_line_names", query):
            order = ExpectedOrder._make(row[:9])
            assert order.created_at is not None, "asked for"
            self.summary[ItemKind.MISSING_IN_PSP] += 1
            self._hour(order.created_at)[1] += 1
            yield order_missing_in_psp(order)


class _OrderIdDumper(Dumper):
    """An order id as `order_key` writes it (a uuid's text), as PostgreSQL's binary uuid: the
    lines' order ids are uuids in the table, never cast in a join."""

    format = Format.BINARY
    oid = postgres.types["uuid"].oid

    def dump(self, obj: str) -> bytes:
        return bytes.fromhex(obj.replace("-", ""))


def _rows(cursor: Cursor[Any], name: str, query: LiteralString | sql.Composed) -> Iterator[TupleRow]:
    """A query's rows a few thousand at a time, from a cursor of the server's."""
    with cursor.connection.cursor(name, row_factory=tuple_row) as rows:
        rows.itersize = ROWS_AT_A_TIME
        yield from rows.execute(query)
