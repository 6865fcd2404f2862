"""The simulator's books in one SQLite file: operations, settlement lines, webhook events, deliveries.

Each operation is one transaction with its settlement line, its event and the event's
deliveries, so a crash (even kill -9) keeps either all of it or none. WAL mode with
`synchronous=NORMAL`: a committed operation survives the process dying; only a power cut
could lose the last few, which a simulator may.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    nonce TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    psp_reference TEXT NOT NULL UNIQUE,
    request_hash TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    fee INTEGER NOT NULL,
    status TEXT NOT NULL,
    failure_reason TEXT,
    instrument TEXT NOT NULL,
    charge_reference TEXT,
    created_at TEXT NOT NULL,
    dispute_due_at REAL,
    dispute_reference TEXT,
    dispute_amount INTEGER,
    dispute_fee INTEGER,
    disputed_at TEXT
);
CREATE INDEX IF NOT EXISTS operations_refunds ON operations (charge_reference)
    WHERE charge_reference IS NOT NULL;
CREATE INDEX IF NOT EXISTS operations_disputes_due ON operations (dispute_due_at)
    WHERE dispute_due_at IS NOT NULL AND disputed_at IS NULL;
CREATE TABLE IF NOT EXISTS settlement_lines (
    id INTEGER PRIMARY KEY,
    day TEXT NOT NULL,
    psp_reference TEXT NOT NULL,
    merchant_reference TEXT NOT NULL,
    type TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    fee INTEGER NOT NULL,
    status TEXT NOT NULL,
    settled_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS settlement_lines_day ON settlement_lines (day, id);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    nonce TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_nonce ON events (nonce);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (id),
    created REAL NOT NULL,
    due_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at TEXT,
    gave_up_at TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (due_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
"""


@dataclass(frozen=True)
class Operation:
    """A charge, payout, refund or recharge done (or refused, with a failure reason)."""

    nonce: str
    kind: str
    psp_reference: str
    request_hash: str
    amount: int
    currency: str
    fee: int
    status: str
    failure_reason: str | None
    instrument: str  # JSON of what may be shown: type, last four
    charge_reference: str | None
    created_at: str
    dispute_due_at: float | None = None
    dispute_reference: str | None = None
    dispute_amount: int | None = None
    dispute_fee: int | None = None
    disputed_at: str | None = None


@dataclass(frozen=True)
class SettlementLine:
    psp_reference: str
    merchant_reference: str
    type: str
    amount: int
    currency: str
    fee: int
    status: str
    settled_at: str


@dataclass(frozen=True)
class Event:
    """A webhook event: its body is the exact JSON every delivery of it sends."""

    id: str
    type: str
    nonce: str
    created_at: str
    body: str


@dataclass(frozen=True)
class Delivery:
    id: int
    event_id: str
    body: str
    created: float
    attempts: int


OPERATION_COLUMNS = [field.name for field in fields(Operation)]
LINE_COLUMNS = [field.name for field in fields(SettlementLine)]


class Store:
    """Reads and writes the books; one connection, used by one thread (the event loop's)."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self.connection.execute("PRAGMA foreign_keys=ON")
        self.connection.executescript(SCHEMA)

    def close(self) -> None:
        self.connection.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield self.connection
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    def operation(self, nonce: str) -> Operation | None:
        return self._operation("nonce", nonce)

    def charge(self, psp_reference: str) -> Operation | None:
        operation = self._operation("psp_reference", psp_reference)
        return operation if operation and operation.kind == "charge" else None

    def refunded(self, charge_reference: str) -> int:
        row = self.connection.execute(
            "SELECT coalesce(sum(amount), 0) FROM operations "
            "WHERE charge_reference = ? AND kind = 'refund' AND status = 'succeeded'",
            (charge_reference,)).fetchone()
        return int(row[0])

    def record(self, operation: Operation, line: SettlementLine | None, event: Event,
               deliveries: list[float], now: float) -> None:
        """One operation, its settlement line (if it has one) and its webhook, in one transaction."""
        with self.transaction() as db:
            db.execute(f"INSERT INTO operations ({', '.join(OPERATION_COLUMNS)}) "
                       f"VALUES ({', '.join('?' * len(OPERATION_COLUMNS))})",
                       [getattr(operation, name) for name in OPERATION_COLUMNS])
            if line is not None:
                self._settle(db, line)
            self._announce(db, event, deliveries, now)

    def disputes_due(self, now: float) -> list[Operation]:
        rows = self.connection.execute(
            f"SELECT {', '.join(OPERATION_COLUMNS)} FROM operations "
            "WHERE dispute_due_at IS NOT NULL AND disputed_at IS NULL AND dispute_due_at <= ? "
            "ORDER BY dispute_due_at LIMIT 100", (now,)).fetchall()
        return [Operation(*row) for row in rows]

    def record_dispute(self, charge: Operation, line: SettlementLine | None, event: Event | None,
                       deliveries: list[float], now: float) -> None:
        """A charge's chargeback (or, with no line, that nothing was left to take back)."""
        with self.transaction() as db:
            if line is None or event is None:
                db.execute("UPDATE operations SET dispute_due_at = NULL WHERE nonce = ?",
                           (charge.nonce,))
                return
            db.execute("UPDATE operations SET dispute_reference = ?, dispute_amount = ?, "
                       "dispute_fee = ?, disputed_at = ? WHERE nonce = ? AND disputed_at IS NULL",
                       (line.psp_reference, line.amount, line.fee, line.settled_at, charge.nonce))
            self._settle(db, line)
            self._announce(db, event, deliveries, now)

    def settlement_lines(self, day: str) -> list[SettlementLine]:
        rows = self.connection.execute(
            f"SELECT {', '.join(LINE_COLUMNS)} FROM settlement_lines WHERE day = ? ORDER BY id",
            (day,)).fetchall()
        return [SettlementLine(*row) for row in rows]

    def due_deliveries(self, now: float, limit: int, busy: set[int]) -> list[Delivery]:
        rows = self.connection.execute(
            "SELECT d.id, d.event_id, e.body, d.created, d.attempts FROM deliveries d "
            "JOIN events e ON e.id = d.event_id "
            "WHERE d.delivered_at IS NULL AND d.gave_up_at IS NULL AND d.due_at <= ? "
            "ORDER BY d.due_at, d.id LIMIT ?", (now, limit + len(busy))).fetchall()
        return [Delivery(*row) for row in rows if row[0] not in busy][:limit]

    def delivered(self, delivery_id: int, attempts: int, at: str) -> None:
        self.connection.execute(
            "UPDATE deliveries SET attempts = ?, delivered_at = ?, last_error = NULL WHERE id = ?",
            (attempts, at, delivery_id))

    def failed(self, delivery_id: int, attempts: int, error: str, *, retry_at: float | None,
               at: str) -> None:
        """A failed attempt: due again at `retry_at`, or given up when that is None."""
        if retry_at is None:
            self.connection.execute(
                "UPDATE deliveries SET attempts = ?, last_error = ?, gave_up_at = ? WHERE id = ?",
                (attempts, error, at, delivery_id))
        else:
            self.connection.execute(
                "UPDATE deliveries SET attempts = ?, last_error = ?, due_at = ? WHERE id = ?",
                (attempts, error, retry_at, delivery_id))

    def events(self, nonce: str | None, limit: int) -> list[dict[str, Any]]:
        """Events (newest first) with each delivery's state, for people and tests to watch."""
        where, arguments = ("WHERE nonce = ?", [nonce]) if nonce else ("", [])
        events = self.connection.execute(
            f"SELECT id, body FROM events {where} ORDER BY rowid DESC LIMIT ?",
            [*arguments, limit]).fetchall()
        answer = []
        for event_id, body in events:
            deliveries = self.connection.execute(
                "SELECT id, due_at, attempts, last_error, delivered_at, gave_up_at FROM deliveries "
                "WHERE event_id = ? ORDER BY id", (event_id,)).fetchall()
            answer.append({**json.loads(body), "deliveries": [
                {"id": row[0], "due_at": row[1], "attempts": row[2], "last_error": row[3],
                 "delivered_at": row[4], "gave_up_at": row[5]} for row in deliveries]})
        return answer

    def _operation(self, column: str, value: str) -> Operation | None:
        row = self.connection.execute(
            f"SELECT {', '.join(OPERATION_COLUMNS)} FROM operations WHERE {column} = ?",
            (value,)).fetchone()
        return Operation(*row) if row else None

    @staticmethod
    def _settle(db: sqlite3.Connection, line: SettlementLine) -> None:
        db.execute(f"INSERT INTO settlement_lines (day, {', '.join(LINE_COLUMNS)}) "
                   f"VALUES (?, {', '.join('?' * len(LINE_COLUMNS))})",
                   [line.settled_at[:10], *(getattr(line, name) for name in LINE_COLUMNS)])

    @staticmethod
    def _announce(db: sqlite3.Connection, event: Event, deliveries: list[float], now: float) -> None:
        db.execute("INSERT INTO events (id, type, nonce, created_at, body) VALUES (?, ?, ?, ?, ?)",
                   (event.id, event.type, event.nonce, event.created_at, event.body))
        db.executemany("INSERT INTO deliveries (event_id, created, due_at) VALUES (?, ?, ?)",
                       [(event.id, now, due_at) for due_at in deliveries])
