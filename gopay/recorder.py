"""The event recorder: the library's PostgreSQL recorder with a cheaper batch insert.

The library sends a batch as one array of composite rows, which psycopg dumps in Python, row
by row and field by field: a third of the cost of saving a group commit. Here the batch goes
as four array literals (ids, versions, topics, states) joined with C string operations,
which is cheaper for PostgreSQL to parse too. Everything else stays the library's: the
exclusive table lock that keeps notification ids in commit order, the NOTIFY, the pipeline
and the retries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier


class EventRecorder(PostgresApplicationRecorder):
    """Inserts a batch of stored events as four arrays; see the module docstring."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.insert_events_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%s::{id_type}[], %s::bigint[], %s::text[], %s::bytea[]) "
            "RETURNING notification_id"
        ).format(schema=Identifier(datastore.schema), table=Identifier(self.events_table_name),
                 id_type=Identifier(datastore.originator_id_type))

    def _insert_stored_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent],
                              **kwargs: Any) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(self.insert_events_statement, (
            _array(str(event.originator_id) for event in stored_events),
            _array(str(event.originator_version) for event in stored_events),
            _array(_quoted(event.topic) for event in stored_events),
            _array(f'"\\\\x{event.state.hex()}"' for event in stored_events),
        ), prepare=True)


def _array(elements: Iterable[str]) -> str:
    """A PostgreSQL array literal of elements already in its text form."""
    return "{" + ",".join(elements) + "}"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
