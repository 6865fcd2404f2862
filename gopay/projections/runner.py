"""Keeps the read models current: pages of events, one transaction each, one process at a time.

The library's ProjectionRunner commits once per event and reads the log once per projection;
at thousands of events a second that is thousands of fsyncs, and every projection decoding
every event. GoPay's runner reads the application's notification log in pages, decodes each
event once and gives it to every projection, then commits every view's rows and tracking
position in one transaction (the views share one database). So a crash resumes exactly where
the last committed page ended, and a projection added later, or rebuilt, catches up from
its own position while the others carry on from theirs.

Exactly one process runs the projections (a PostgreSQL advisory lock elects it); the others
stand by and take over within a second if it dies.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification, Tracking
from eventsourcing.projection import Projection

from gopay.application import GoPay
from gopay.projections.view import PagedView

log = logging.getLogger(__name__)

LOCK_NAME = "gopay-projections"


class PagedProjectionRunner:
    """Runs projections over the application's notification log in a background thread."""

    def __init__(self, app: GoPay, projections: Sequence[Projection[PagedView]],
                 database_url: str, *, page_size: int = 2000,
                 on_advance: Callable[[int], None] = lambda position: None) -> None:
        self.app = app
        self.projections = list(projections)
        self.database_url = database_url
        self.page_size = page_size
        self.on_advance = on_advance
        self.is_leader = False
        # Each view's position as this runner last committed it, while it leads.
        self.committed: dict[str, int] = {}
        self._stopping = threading.Event()
        self._lock_key = zlib.crc32(LOCK_NAME.encode())
        self._thread = threading.Thread(target=self._run, name="projections", daemon=True)

    @property
    def views(self) -> list[PagedView]:
        return [projection.view for projection in self.projections]

    def start(self) -> PagedProjectionRunner:
        self._thread.start()
        return self

    @property
    def is_running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def positions(self) -> dict[str, int]:
        """How far each view has got (from memory while this runner leads)."""
        remembered = self.remembered_positions()
        if remembered is not None:
            return remembered
        return {p.name: p.view.position(self.app.name) for p in self.projections}

    def remembered_positions(self) -> dict[str, int] | None:
        """How far each view has got, while this runner leads and so knows; else None."""
        if self.is_leader and len(self.committed) == len(self.projections):
            return dict(self.committed)
        return None

    def run_until_caught_up(self) -> None:
        """Process every page now, in this thread (for commands and tests that rebuild)."""
        while self.process_page():
            pass

    def process_page(self) -> bool:
        """Project the next page of events; False when there was nothing new."""
        positions = self.positions()
        start = min(positions.values())
        notifications = self.app.recorder.select_notifications(
            start=start, limit=self.page_size, inclusive_of_start=False)
        if not notifications:
            return False
        last = notifications[-1].id
        events = [(n.id, self.app.mapper.to_domain_event(n)) for n in notifications]
        behind = [p for p in self.projections if positions[p.name] < last]
        for projection in behind:
            projection.view.start_page()
            since = positions[projection.name]
            for notification_id, event in events:
                if notification_id > since:
                    projection.process_event(event, Tracking(self.app.name, notification_id))
        with self.projections[0].view.datastore.transaction(commit=True) as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO off")
            for projection in behind:
                projection.view.write(cursor, Tracking(self.app.name, last))
        self.committed = {**positions, **{p.name: last for p in behind}}
        self.on_advance(min(self.committed.values()))
        return True

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._lead()
            except Exception:  # the database went away or a page failed: retry
                log.exception("projections stopped; retrying")
                self._stopping.wait(1.0)
            finally:
                self.is_leader = False
                self.committed = {}

    def _lead(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_key,)).fetchone()
            if not (row and row[0]):
                self._stopping.wait(0.5)
                return
            conn.execute(f'LISTEN "{self.app.recorder.channel_name}"')  # type: ignore[attr-defined]  # the PostgreSQL recorder's channel
            self.committed = self.positions()
            self.is_leader = True
            while not self._stopping.is_set():
                if not self.process_page():
                    # Caught up: sleep until the next commit is announced (or a short while).
                    for _ in conn.notifies(timeout=0.1, stop_after=1):
                        pass


def projections_led_elsewhere(database_url: str, *, within: float) -> bool:
    """Wait (up to `within` seconds) until some process leads the projections."""
    deadline = time.monotonic() + within
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                               "AND granted AND objid = %s", (zlib.crc32(LOCK_NAME.encode()),)).fetchone()
            if row and row[0]:
                return True
            time.sleep(0.1)
    return False


def lag_seconds(app: GoPay, position: int) -> float:
    """How old the oldest event past `position` is (0 when there is none)."""
    pending: Sequence[Notification] = app.recorder.select_notifications(
        start=position, limit=1, inclusive_of_start=False)
    if not pending:
        return 0.0
    event: Any = app.mapper.to_domain_event(pending[0])
    timestamp: datetime = cast(Aggregate.Event, event).timestamp
    return max(0.0, (datetime.now(UTC) - timestamp).total_seconds())
