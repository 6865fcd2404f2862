"""Keeps the read models current: pages of events, one transaction each, one process at a time.

The library's ProjectionRunner commits once per event and reads the log once per projection;
at thousands of events a second that is thousands of fsyncs, and every projection decoding
every event. GoPay's runner reads the application's notification log in pages, decodes each
event once and gives it to the projections that handle its class (looked up once per class,
not by a single-dispatch call per event and projection: that was half the cost of a
rebuild), then commits every view's rows and tracking position in one transaction (the
views share one database). So a crash resumes exactly where
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
from functools import singledispatchmethod
from typing import Any, cast

import psycopg
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification, Tracking
from eventsourcing.projection import Projection
from eventsourcing.utils import resolve_topic
from psycopg.sql import SQL, Composed, Identifier

from gopay.application import GoPay
from gopay.projections.position_listener import announce
from gopay.projections.view import PagedView
from gopay.recorder import EventRecorder

log = logging.getLogger(__name__)

LOCK_NAME = "gopay-projections"
# Events read per page when rebuilding from event zero: fewer, larger transactions.
REBUILD_PAGE_SIZE = 10_000

Handler = Callable[[Any, Tracking], None]


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
        self._positions_statement: Composed | None = None
        self._stopping = threading.Event()
        self._lock_key = zlib.crc32(LOCK_NAME.encode())
        self._thread = threading.Thread(target=self._run, name="projections", daemon=True)
        # Per topic: each projection's handler of its event class (None: not handled).
        self._handlers: dict[str, list[Handler | None]] = {}

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

    def process_page(self, page_size: int | None = None) -> bool:
        """Project the next page of events; False when there was nothing new.

        Each page starts where the database says the views stand, not where this runner last
        committed: a page committed without waiting for the standbys (synchronous_commit off)
        can be lost when the primary fails over, and the page must then be projected again.
        """
        positions = self._stored_positions()
        start = min(positions.values())
        limit = page_size or self.page_size
        recorder = self.app.recorder
        notifications = (recorder.page_of_log(start, limit) if isinstance(recorder, EventRecorder)
                         else recorder.select_notifications(start=start, limit=limit,
                                                            inclusive_of_start=False))
        if not notifications:
            return False
        last = notifications[-1].id
        behind = [p for p in self.projections if positions[p.name] < last]
        for projection in behind:
            projection.view.start_page()
        since = [positions[p.name] for p in behind]
        indexes = [self.projections.index(p) for p in behind]
        # Per topic, the handlers of the views behind and where each view stands: looked up
        # once a page, not once an event and view.
        wanted_by_topic: dict[str, list[tuple[Handler, int]]] = {}
        for notification in notifications:
            wanted = wanted_by_topic.get(notification.topic)
            if wanted is None:
                handlers = self._handlers.get(notification.topic)
                if handlers is None:
                    handlers = self._handlers[notification.topic] = self._handlers_of(
                        notification.topic)
                wanted = wanted_by_topic[notification.topic] = [
                    (cast(Handler, handlers[i]), since[n]) for n, i in enumerate(indexes)
                    if handlers[i]]
            if not wanted:
                continue  # no read model shows it: not even decoded
            event = self.app.mapper.to_domain_event(notification)
            tracking = Tracking(self.app.name, notification.id)
            for handler, after in wanted:
                if notification.id > after:
                    handler(event, tracking)
        committed = {**positions, **{p.name: last for p in behind}}
        with self.projections[0].view.datastore.transaction(commit=True) as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO off")
            for projection in behind:
                projection.view.write(cursor, Tracking(self.app.name, last))
            announce(cursor, min(committed.values()))
        self.committed = committed
        self.on_advance(min(self.committed.values()))
        return True

    def _stored_positions(self) -> dict[str, int]:
        """Each view's position as the database has it, in one round trip."""
        if self._positions_statement is None:
            self._positions_statement = SQL("SELECT {}").format(SQL(", ").join(
                SQL("coalesce((SELECT max(notification_id) FROM {} "
                    "WHERE application_name = %(app)s), 0) AS {}").format(
                    Identifier(p.view.tracking_table_name), Identifier(p.name))
                for p in self.projections))
        with self.projections[0].view.datastore.transaction(commit=False) as cursor:
            cursor.execute(self._positions_statement, {"app": self.app.name})
            row = cursor.fetchone()
        assert row is not None
        return {p.name: int(row[p.name]) for p in self.projections}

    def _handlers_of(self, topic: str) -> list[Handler | None]:
        """What each projection does with an event of this topic (None: nothing)."""
        cls = resolve_topic(topic)
        return [_handler(projection, cls) for projection in self.projections]

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


def _handler(projection: Projection[Any], cls: type) -> Handler | None:
    """The projection's handler of events of `cls`, bound to it; None where it would run its
    fallback for events it does not show (a projection that does not dispatch with
    `singledispatchmethod` gets every event)."""
    bound: Handler = projection.process_event
    for klass in type(projection).__mro__:
        dispatching = klass.__dict__.get("process_event")
        if dispatching is not None:
            break
    if not isinstance(dispatching, singledispatchmethod):
        return bound
    function = dispatching.dispatcher.dispatch(cls)  # registrations deferred until bound above
    if function is dispatching.func and _does_nothing(function):
        return None
    return cast(Handler, function.__get__(projection, type(projection)))


def _nothing(*args: Any) -> None:
    """A fallback for events a read model does not show: nothing but its docstring."""


def _does_nothing(function: Any) -> bool:
    """Whether a function's body is only a docstring (some fallbacks do something: the
    security view records events by a set of classes, not by registrations)."""
    code = getattr(function, "__code__", None)
    return (code is not None and code.co_code == _nothing.__code__.co_code
            and not code.co_names and len(code.co_consts) == len(_nothing.__code__.co_consts))


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
