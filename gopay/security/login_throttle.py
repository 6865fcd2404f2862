"""Login throttling: too many failed sign-ins per account or per client address are refused.

Counters live in PostgreSQL so that every API process sees the same ones. A subject is
`account:<e-mail>` or `address:<client ip>`; unknown e-mails are counted like known ones,
so the answer never tells whether an account exists.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from gopay.clock import Clock, utc_now

CREATE_TABLE = """CREATE TABLE IF NOT EXISTS login_throttle (
    subject text PRIMARY KEY, window_start timestamptz NOT NULL, failures int NOT NULL)"""

Window = tuple[datetime, int]  # (when the window started, failures in it)


class FailureCounts(Protocol):
    """Failures per subject in fixed windows, shared by every process."""

    def windows(self, subjects: list[str]) -> tuple[datetime, dict[str, Window]]:
        """Now, and the current window of each subject that has one."""

    def count(self, subjects: list[str], window: timedelta) -> None:
        """One more failure for each subject, in a new window where the old one ended."""

    def clear(self, subject: str) -> None: ...


@dataclass(frozen=True)
class LoginThrottle:
    """Fixed windows of `window`; `per_account` / `per_address` failures close the door."""

    counts: FailureCounts
    per_account: int = 5
    per_address: int = 50
    window: timedelta = timedelta(minutes=15)

    @staticmethod
    def subjects(email: str, address: str | None) -> list[str]:
        found = [f"account:{email.strip().lower()}"]
        if address:
            found.append(f"address:{address}")
        return found

    def retry_after(self, subjects: list[str]) -> int | None:
        """Seconds until these subjects may try again, or None when they may try now."""
        now, windows = self.counts.windows(subjects)
        waits = [(start + self.window - now).total_seconds()
                 for subject, (start, failures) in windows.items()
                 if failures >= self._limit(subject)]
        waits = [wait for wait in waits if wait > 0]
        return math.ceil(max(waits)) if waits else None

    def failed(self, subjects: list[str]) -> None:
        self.counts.count(subjects, self.window)

    def succeeded(self, email: str) -> None:
        """A correct password clears the account's count (not the address's)."""
        self.counts.clear(self.subjects(email, None)[0])

    def _limit(self, subject: str) -> int:
        return self.per_account if subject.startswith("account:") else self.per_address


class PostgresFailureCounts:
    """The `login_throttle` table; windows follow the database's clock."""

    def __init__(self, datastore: Any) -> None:
        self.datastore = datastore  # the eventsourcing PostgresDatastore

    def windows(self, subjects: list[str]) -> tuple[datetime, dict[str, Window]]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT subject, window_start, failures, now() AS now "
                           "FROM login_throttle RIGHT JOIN (SELECT 1) AS one "
                           "ON subject = ANY(%s)", (subjects,))
            rows = cursor.fetchall()
        return rows[0]["now"], {row["subject"]: (row["window_start"], row["failures"])
                                for row in rows if row["subject"] is not None}

    def count(self, subjects: list[str], window: timedelta) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.executemany(
                "INSERT INTO login_throttle AS t (subject, window_start, failures) "
                "VALUES (%(subject)s, now(), 1) ON CONFLICT (subject) DO UPDATE SET "
                "failures = CASE WHEN t.window_start + %(window)s < now() THEN 1 "
                "ELSE t.failures + 1 END, "
                "window_start = CASE WHEN t.window_start + %(window)s < now() THEN now() "
                "ELSE t.window_start END",
                [{"subject": subject, "window": window} for subject in subjects])

    def clear(self, subject: str) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute("DELETE FROM login_throttle WHERE subject = %s", (subject,))


@dataclass
class MemoryFailureCounts:
    """Windows in a dict, on the given clock: for an application on in-memory persistence."""

    clock: Clock = utc_now
    counted: dict[str, Window] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def windows(self, subjects: list[str]) -> tuple[datetime, dict[str, Window]]:
        with self._lock:
            return self.clock(), {s: self.counted[s] for s in subjects if s in self.counted}

    def count(self, subjects: list[str], window: timedelta) -> None:
        now = self.clock()
        with self._lock:
            for subject in subjects:
                start, failures = self.counted.get(subject, (now, 0))
                self.counted[subject] = (now, 1) if start + window < now else (start, failures + 1)

    def clear(self, subject: str) -> None:
        with self._lock:
            self.counted.pop(subject, None)
