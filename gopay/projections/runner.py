"""Keeps the read models current: pages of events, one transaction each, one process at a time.

The library's ProjectionRunner commits once per event; at thousands of events a second that
is thousands of fsyncs, so GoPay pages the application's notification log instead. Exactly
one process runs a given projection (a PostgreSQL advisory lock elects it); the others stand
by and take over within a second if it dies. A page's rows and its tracking position commit
together, so a crash resumes exactly where the last committed page ended.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

import psycopg
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection

from gopay.application import GoPay
from gopay.projections.view import PagedView

log = logging.getLogger(__name__)


class PagedProjectionRunner:
    """Runs one projection over the application's notification log in a background thread."""

    def __init__(self, app: GoPay, projection: Projection[PagedView], database_url: str, *,
                 page_size: int = 2000,
                 on_advance: Callable[[str, int], None] = lambda name, position: None) -> None:
        self.app = app
        self.projection = projection
        self.view = projection.view
        self.database_url = database_url
        self.page_size = page_size
        self.on_advance = on_advance
        self.is_leader = False
        # The position this runner last committed, while it leads (saves polling the table).
        self.committed_position: int | None = None
        self._stopping = threading.Event()
        self._lock_key = zlib.crc32(f"gopay-projection/{projection.name}".encode())
        self._thread = threading.Thread(target=self._run, name=projection.name, daemon=True)

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

    def run_until_caught_up(self) -> int:
        """Process every page now, in this thread (for commands and tests that rebuild)."""
        while self.process_page():
            pass
        return self.view.position(self.app.name)

    def process_page(self) -> bool:
        """Project the next page of events; False when there was nothing new."""
        position = self.committed_position
        if not self.is_leader or position is None:
            position = self.view.position(self.app.name)
        topics = self.projection.topics
        # Ids are given out and committed in order under the recorder's table lock, so every
        # event up to the head is visible; a page of only this projection's topics that ends
        # short of the limit has seen all of them.
        head = (self.app.recorder.max_notification_id() or 0) if topics else None
        notifications = self.app.recorder.select_notifications(
            start=position, limit=self.page_size, stop=head, topics=topics,
            inclusive_of_start=False)
        if head is not None and len(notifications) < self.page_size:
            last = head  # every event up to the head was looked at
        else:
            last = notifications[-1].id if notifications else position
        if last <= position:
            return False
        with self.view.page(Tracking(self.app.name, last)):
            for notification in notifications:
                event = self.app.mapper.to_domain_event(notification)
                self.projection.process_event(event, Tracking(self.app.name, notification.id))
        self.committed_position = last
        self.on_advance(self.projection.name, last)
        return True

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._lead()
            except Exception:  # the database went away or a page failed: retry
                log.exception("projection %s stopped; retrying", self.projection.name)
                self._stopping.wait(1.0)
            finally:
                self.is_leader = False
                self.committed_position = None

    def _lead(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_key,)).fetchone()
            if not (row and row[0]):
                self._stopping.wait(0.5)
                return
            conn.execute(f'LISTEN "{self.app.recorder.channel_name}"')  # type: ignore[attr-defined]  # the PostgreSQL recorder's channel
            self.committed_position = self.view.position(self.app.name)
            self.is_leader = True
            while not self._stopping.is_set():
                if not self.process_page():
                    # Caught up: sleep until the next commit is announced (or a short while).
                    for _ in conn.notifies(timeout=0.1, stop_after=1):
                        pass


def lag_seconds(app: GoPay, view: PagedView) -> float:
    """How old the oldest event the view has not shown yet is (0 when caught up)."""
    pending = app.recorder.select_notifications(
        start=view.position(app.name), limit=1, inclusive_of_start=False)
    if not pending:
        return 0.0
    timestamp: datetime = cast(Aggregate.Event, app.mapper.to_domain_event(pending[0])).timestamp
    return max(0.0, (datetime.now(UTC) - timestamp).total_seconds())

