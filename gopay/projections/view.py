"""What every GoPay view shares: tables created with the library, pages written atomically with tracking."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL


class PagedView(PostgresTrackingRecorder):
    """A PostgreSQL view whose rows and tracking position commit in one transaction per page."""

    # Tables and indexes, each statement run once by create_table() (IF NOT EXISTS).
    schema_statements: tuple[str, ...] = ()
    # Tables emptied when the view is rebuilt from event zero.
    tables: tuple[str, ...] = ()

    def __init__(self, datastore, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(datastore, **kwargs)
        self.sql_create_statements.extend(SQL(s) for s in self.schema_statements)  # type: ignore[arg-type]

    @contextmanager
    def page(self, tracking: Tracking) -> Iterator[None]:
        """Collect the changes of a page of events, then write them and the tracking at once."""
        self.start_page()
        yield
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO off")
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
                cursor.execute(SQL("TRUNCATE {}").format(SQL(table)))  # type: ignore[arg-type]
            cursor.execute(
                SQL("DELETE FROM {} WHERE application_name <> %s").format(SQL(self.tracking_table_name)),  # type: ignore[arg-type]
                (self.table_migration_identifier,),
            )

    def position(self, application_name: str) -> int:
        return self.max_tracking_id(application_name) or 0
