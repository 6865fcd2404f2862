"""Login throttling: too many failed sign-ins per account or per client address answer 429.

Counters live in PostgreSQL so that every API process sees the same ones. A subject is
`account:<e-mail>` or `address:<client ip>`; unknown e-mails are counted like known ones,
so the answer never tells whether an account exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

CREATE_TABLE = """CREATE TABLE IF NOT EXISTS login_throttle (
    subject text PRIMARY KEY, window_start timestamptz NOT NULL, failures int NOT NULL)"""


@dataclass(frozen=True)
class LoginThrottle:
    """Fixed windows of `window`; `per_account` / `per_address` failures close the door."""

    datastore: Any  # the eventsourcing PostgresDatastore the application already uses
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
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT subject, window_start, failures FROM login_throttle "
                           "WHERE subject = ANY(%s)", (subjects,))
            rows = cursor.fetchall()
        now = datetime.now(UTC)
        waits = [
            (row["window_start"] + self.window - now).total_seconds()
            for row in rows
            if row["failures"] >= self._limit(row["subject"])
        ]
        waits = [wait for wait in waits if wait > 0]
        return math.ceil(max(waits)) if waits else None

    def failed(self, subjects: list[str]) -> None:
        """Count a failure for every subject, starting a new window where the old one ended."""
        with self.datastore.transaction(commit=True) as cursor:
            cursor.executemany(
                "INSERT INTO login_throttle AS t (subject, window_start, failures) "
                "VALUES (%(subject)s, now(), 1) ON CONFLICT (subject) DO UPDATE SET "
                "failures = CASE WHEN t.window_start + %(window)s < now() THEN 1 "
                "ELSE t.failures + 1 END, "
                "window_start = CASE WHEN t.window_start + %(window)s < now() THEN now() "
                "ELSE t.window_start END",
                [{"subject": subject, "window": self.window} for subject in subjects])

    def succeeded(self, email: str) -> None:
        """A correct password clears the account's count (not the address's)."""
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute("DELETE FROM login_throttle WHERE subject = %s",
                           (self.subjects(email, None)[0],))

    def _limit(self, subject: str) -> int:
        return self.per_account if subject.startswith("account:") else self.per_address
