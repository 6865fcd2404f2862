"""What every GoPay view shares: tables created with the library, pages written atomically with tracking.

A view's tables are disposable: they can always be built again from the events. So a view
that changes shape does not migrate its tables; it bumps its `version`, and the next
`prepare_database` drops them, creates them anew and lets the runner rebuild them from
event zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, LiteralString

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg import Connection, Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

# The stored events of some topics up to a position, as a query whose rows have the event's
# notification_id, originator_id, originator_version, topic and state (jsonb): the recorder's.
StoredStates = Callable[[Sequence[str], int], Composed]
# A comparison of (part of) a view with the events, in a connection's snapshot: what differs.
Check = Callable[[Connection[DictRow], StoredStates], list[str]]

VIEW_VERSIONS = """CREATE TABLE IF NOT EXISTS view_versions (
    view text PRIMARY KEY, version integer NOT NULL)"""


class PagedView(PostgresTrackingRecorder):
    """A PostgreSQL view whose rows and tracking position commit in one transaction per page."""

    # Tables and indexes, each statement run by create_table() (IF NOT EXISTS).
    schema_statements: ClassVar[tuple[LiteralString, ...]] = ()
    # Tables emptied when the view is rebuilt from event zero, dropped when its shape changes.
    tables: ClassVar[tuple[LiteralString, ...]] = ()
    # Raise it whenever the tables change shape or what they hold: the view is built anew.
    version: ClassVar[int] = 1

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        # Where queries go, if not to `datastore` (the primary, which the runner writes to).
        self.reader: PostgresDatastore | None = None
        self.sql_create_statements.extend(Composed([SQL(s)]) for s in self.schema_statements)

    def create_table(self) -> None:
        """Create the tables; if they were made for another version of the view, make them anew."""
        super().create_table()
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(VIEW_VERSIONS)
            cursor.execute("SELECT version FROM view_versions WHERE view = %s FOR UPDATE",
                           (self.tracking_table_name,))
            row = cursor.fetchone()
            if row is not None and row["version"] == self.version:
                return
            for table in self.tables:
                cursor.execute(SQL("DROP TABLE IF EXISTS {} CASCADE").format(Identifier(table)))
            for statement in self.schema_statements:
                cursor.execute(statement)
            self._forget_position(cursor)
            cursor.execute("INSERT INTO view_versions (view, version) VALUES (%s, %s) "
                           "ON CONFLICT (view) DO UPDATE SET version = EXCLUDED.version",
                           (self.tracking_table_name, self.version))

    def write(self, cursor: Cursor[DictRow], tracking: Tracking) -> None:
        """Write the page's changes and the position they reach, in the page's transaction."""
        self.write_page(cursor)
        self._insert_tracking(cursor, tracking)

    def start_page(self) -> None:
        """Reset the in-memory changes of the page being processed."""

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        """Write the page's changes with `cursor`, inside the page's transaction."""

    def rebuild(self) -> None:
        """Forget every row and the tracking position, so the view is built again from event zero."""
        with self.datastore.transaction(commit=True) as cursor:
            for table in self.tables:
                cursor.execute(SQL("TRUNCATE {}").format(Identifier(table)))
            self._forget_position(cursor)

    def position(self, application_name: str) -> int:
        return self.max_tracking_id(application_name) or 0

    def position_in(self, conn: Connection[DictRow], application_name: str) -> int:
        """The position the view has reached, as `conn`'s transaction sees it."""
        row = conn.execute(SQL("SELECT max(notification_id) AS position FROM {} "
                               "WHERE application_name = %s").format(
            Identifier(self.tracking_table_name)), (application_name,)).fetchone()
        return int(row["position"] or 0) if row else 0

    def checks(self, application_name: str) -> list[Check]:
        """Comparisons of the view's rows with what the events up to its position say, each
        recomputed in a connection's snapshot, independent of the others (none: not compared)."""
        return []

    def query(self, statement: LiteralString, params: Any = ()) -> list[dict[str, Any]]:
        """The rows a read-only statement over this view's tables answers (from the reader,
        a standby, when there is one)."""
        with (self.reader or self.datastore).transaction(commit=False) as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall()

    def _forget_position(self, cursor: Cursor[DictRow]) -> None:
        cursor.execute(SQL("DELETE FROM {} WHERE application_name <> %s").format(
            Identifier(self.tracking_table_name)), (self.table_migration_identifier,))
