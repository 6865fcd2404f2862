"""Where the read models stand, as the process leading the projections announces it.

A query that must read its caller's writes waits until every read model shows the caller's
last command. In a process that does not run the projections, that wait used to ask the
database where they stood every few milliseconds: in the top-up benchmark those questions
were PostgreSQL's largest cost (nine per top-up). The leader now announces each page it
commits (a NOTIFY sent in the page's own transaction, so heard only once the page is
visible), and each other process listens on one connection: a waiting query wakes when
its position is announced, and asks nobody.

A position heard is never ahead of what queries see; until this process is listening (or
while its connection is down) the read side asks the database, as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from psycopg import Cursor

log = logging.getLogger(__name__)

CHANNEL = "gopay_read_side"


def announce(cursor: Cursor[object], position: int) -> None:
    """Tell listeners that every read model shows `position`, when this transaction commits."""
    cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(position)))


class PositionListener:
    """Hears the leader's announcements on a connection of its own, in a daemon thread."""

    def __init__(self, database_url: str, ask: Callable[[], int],
                 on_heard: Callable[[int], None]) -> None:
        self.database_url = database_url
        self.ask = ask  # the position as the database tells it
        self.on_heard = on_heard
        self._heard: int | None = None
        self._started = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def position(self) -> int | None:
        """The last position heard; None while not listening (the caller asks the database)."""
        if not self._started:
            self._start()
        return self._heard

    def stop(self) -> None:
        self._stopping.set()

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._run, name="read-side-listener", daemon=True).start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            except Exception:  # the database went away: ask it directly until back
                if not self._stopping.is_set():
                    log.warning("read side listener lost its connection; retrying", exc_info=True)
            self._heard = None
            self._stopping.wait(1.0)

    def _listen(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            connection.execute(f'LISTEN "{CHANNEL}"')
            # Listening first, then asking: nothing committed in between goes unheard.
            self._heard = self.ask()
            while not self._stopping.is_set():
                for notify in connection.notifies(timeout=1.0):
                    self._heard = int(notify.payload)
                    self.on_heard(self._heard)
                    if self._stopping.is_set():
                        return
