"""The reconciliation read model: runs with their summaries, and each run's findings."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, LiteralString
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow

from gopay.aggregates.reconciliation import ReconciliationRun, item_id_for
from gopay.projections.view import PagedView


class ReconciliationView(PagedView):
    """Runs newest first; a run's findings in the file's order."""

    tables = ("reconciliation_runs", "reconciliation_items")
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS reconciliation_runs (
            id uuid PRIMARY KEY, file_sha256 text NOT NULL, file_name text NOT NULL,
            source text NOT NULL, started_by uuid, status text NOT NULL,
            requested_days text[] NOT NULL, period text[] NOT NULL, attempt uuid NOT NULL,
            lines bigint NOT NULL DEFAULT 0, summary jsonb, report jsonb,
            abandoned_because text NOT NULL DEFAULT '',
            started_at timestamptz NOT NULL, finished_at timestamptz)""",
        """CREATE INDEX IF NOT EXISTS reconciliation_runs_started_idx
            ON reconciliation_runs (started_at, id)""",
        """CREATE TABLE IF NOT EXISTS reconciliation_items (
            run_id uuid NOT NULL, seq integer NOT NULL, item_id uuid NOT NULL UNIQUE,
            kind text NOT NULL, line bigint, psp_reference text, merchant_reference text,
            expected jsonb, actual jsonb, cause text NOT NULL, order_ids jsonb NOT NULL,
            difference jsonb, suspense_order_id uuid, posted_by uuid,
            PRIMARY KEY (run_id, seq))""",
        """CREATE INDEX IF NOT EXISTS reconciliation_items_kind_idx
            ON reconciliation_items (run_id, kind, seq)""",
    )

    def start_page(self) -> None:
        # Statements in log order (a restart empties what came before it), each with its rows.
        self._writes: list[tuple[LiteralString, list[tuple[Any, ...]]]] = []

    def _write(self, statement: LiteralString, row: tuple[Any, ...]) -> None:
        if self._writes and self._writes[-1][0] == statement:
            self._writes[-1][1].append(row)
        else:
            self._writes.append((statement, [row]))

    def run_started(self, run_id: UUID, e: ReconciliationRun.Started) -> None:
        self._write("INSERT INTO reconciliation_runs (id, file_sha256, file_name, source, "
                    "started_by, status, requested_days, period, attempt, started_at) "
                    "VALUES (%s, %s, %s, %s, %s, 'running', %s, %s, %s, %s)",
                    (run_id, e.file_sha256, e.file_name, e.source, e.started_by,
                     list(e.requested_days), list(e.requested_days), e.attempt, _moment(e.at)))

    def run_restarted(self, run_id: UUID, attempt: UUID, at: str) -> None:
        self._write("DELETE FROM reconciliation_items WHERE run_id = %s", (run_id,))
        self._write("UPDATE reconciliation_runs SET attempt = %s, started_at = %s WHERE id = %s",
                    (attempt, _moment(at), run_id))

    def items_found(self, run_id: UUID, first: int, items: list[dict[str, Any]]) -> None:
        for seq, item in enumerate(items, start=first):
            self._write(
                "INSERT INTO reconciliation_items (run_id, seq, item_id, kind, line, "
                "psp_reference, merchant_reference, expected, actual, cause, order_ids, "
                "difference) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (run_id, seq, item_id_for(run_id, seq), item["kind"], item["line"],
                 item["psp_reference"], item["merchant_reference"], _json(item["expected"]),
                 _json(item["actual"]), item["cause"], json.dumps(item["order_ids"]),
                 _json(item["difference"])))

    def run_finished(self, run_id: UUID, e: ReconciliationRun.Finished) -> None:
        self._write("UPDATE reconciliation_runs SET status = 'completed', period = %s, "
                    "lines = %s, summary = %s, report = %s, finished_at = %s WHERE id = %s",
                    (list(e.period), e.lines, json.dumps(e.summary), json.dumps(e.report),
                     _moment(e.at), run_id))

    def run_abandoned(self, run_id: UUID, reason: str, at: str) -> None:
        self._write("DELETE FROM reconciliation_items WHERE run_id = %s", (run_id,))
        self._write("UPDATE reconciliation_runs SET status = 'abandoned', abandoned_because = %s, "
                    "finished_at = %s WHERE id = %s", (reason, _moment(at), run_id))

    def posted_to_suspense(self, run_id: UUID, seq: int, order_id: UUID, by: UUID) -> None:
        self._write("UPDATE reconciliation_items SET suspense_order_id = %s, posted_by = %s "
                    "WHERE run_id = %s AND seq = %s", (order_id, by, run_id, seq))

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        for statement, rows in self._writes:
            cursor.executemany(statement, rows)

    # Queries

    def run(self, run_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM reconciliation_runs WHERE id = %s", (run_id,))
        return rows[0] if rows else None

    def runs(self, *, limit: int, after: UUID | None = None) -> list[dict[str, Any]]:
        """Runs, newest first; `after` is the last id of the page before."""
        if after is None:
            return self.query("SELECT * FROM reconciliation_runs "
                              "ORDER BY started_at DESC, id DESC LIMIT %s", (limit,))
        return self.query(
            "SELECT * FROM reconciliation_runs WHERE (started_at, id) < "
            "(SELECT started_at, id FROM reconciliation_runs WHERE id = %s) "
            "ORDER BY started_at DESC, id DESC LIMIT %s", (after, limit))

    def items(self, run_id: UUID, *, limit: int, after: UUID | None = None,
              kind: str | None = None) -> list[dict[str, Any]]:
        """A run's findings in the file's order (missing_in_psp last); `after` is an item id."""
        return self.query(
            "SELECT * FROM reconciliation_items WHERE run_id = %(run)s "
            "AND (%(kind)s::text IS NULL OR kind = %(kind)s) AND seq > COALESCE("
            "(SELECT seq FROM reconciliation_items WHERE item_id = %(after)s AND run_id = %(run)s), -1) "
            "ORDER BY seq LIMIT %(limit)s",
            {"run": run_id, "kind": kind, "after": after, "limit": limit})

    def item(self, item_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM reconciliation_items WHERE item_id = %s", (item_id,))
        return rows[0] if rows else None

    def scheduled_run_done(self, day: date) -> bool:
        """Whether the scheduler has reconciled the PSP's file of `day` already."""
        return bool(self.query(
            "SELECT 1 FROM reconciliation_runs WHERE source = 'scheduled' "
            "AND status = 'completed' AND %s = ANY(requested_days) LIMIT 1", (day.isoformat(),)))


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


class ReconciliationProjection(Projection[ReconciliationView]):
    """Turns reconciliation runs' events into the reconciliation read model."""

    name = "reconciliation_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events this read model does not show."""

    @process_event.register
    def _(self, e: ReconciliationRun.Started, tracking: Tracking) -> None:
        self.view.run_started(e.originator_id, e)

    @process_event.register
    def _(self, e: ReconciliationRun.Restarted, tracking: Tracking) -> None:
        self.view.run_restarted(e.originator_id, e.attempt, e.at)

    @process_event.register
    def _(self, e: ReconciliationRun.ItemsFound, tracking: Tracking) -> None:
        self.view.items_found(e.originator_id, e.first, e.items)

    @process_event.register
    def _(self, e: ReconciliationRun.Finished, tracking: Tracking) -> None:
        self.view.run_finished(e.originator_id, e)

    @process_event.register
    def _(self, e: ReconciliationRun.Abandoned, tracking: Tracking) -> None:
        self.view.run_abandoned(e.originator_id, e.reason, e.at)

    @process_event.register
    def _(self, e: ReconciliationRun.PostedToSuspense, tracking: Tracking) -> None:
        self.view.posted_to_suspense(e.originator_id, e.seq, e.order_id, e.by)
