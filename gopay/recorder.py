"""The event recorder: the library's PostgreSQL recorder, with a cheaper batch insert that
also extends the tamper-evident chain of every stored event.

The library sends a batch as one array of composite rows, which psycopg dumps in Python, row
by row and field by field: a third of the cost of saving a group commit. Here the batch goes
as four array literals (ids, versions, topics, states) joined with C string operations,
which is cheaper for PostgreSQL to parse too. Everything else stays the library's: the
exclusive table lock that keeps notification ids in commit order, the NOTIFY, the pipeline
and the retries.

The same statement chains the batch: PostgreSQL digests each new event (its position, id,
version, topic and stored state) and appends a block to `<events>_chain` whose hash covers
the block before it and every digest of this one, in notification order. So the chain grows
in the transaction that stores the events, under the same lock, with no extra round trip;
`gopay.reconcile.audit` recomputes it to find any event changed, removed, reordered or added
behind GoPay's back.

Every process that writes takes the writers' turn first (`writers_turn`, an advisory lock):
see `gopay.group_commit`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    ApplicationRecorder,
    InterfaceError,
    Notification,
    OperationalError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg import Connection, Cursor
from psycopg import Error as PsycopgError
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

# What identifies a stored event, digested by PostgreSQL as it stores it (and by the auditor's
# check, the same way): its position, aggregate, version, topic (length first, so no byte can
# move between topic and state unnoticed) and stored state.
EVENT_DIGEST = ("sha256(int8send(notification_id) || uuid_send(originator_id) || "
                "int8send(originator_version) || int4send(octet_length(topic)) || "
                "convert_to(topic, 'UTF8') || state)")

# The advisory lock of the writers' turn ("gopay-w" in ASCII).
WRITERS_TURN = 0x676F7061792D77


def stored_versions(recorder: ApplicationRecorder, aggregate_ids: Sequence[UUID]) -> dict[UUID, int]:
    """The latest stored version of each of these aggregates that exists."""
    if isinstance(recorder, EventRecorder):
        versions: dict[UUID, int] = recorder.stored_versions(aggregate_ids)
        return versions
    found = {}
    for aggregate_id in aggregate_ids:  # any other recorder: one question per aggregate
        last = recorder.select_events(aggregate_id, desc=True, limit=1)
        if last:
            found[aggregate_id] = last[0].originator_version
    return found


class EventRecorder(PostgresApplicationRecorder):
    """Inserts a batch of stored events as four arrays; see the module docstring."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.stored_versions_statement = SQL(
            "SELECT originator_id, MAX(originator_version) AS version FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s) GROUP BY originator_id"
        ).format(schema=Identifier(datastore.schema), table=Identifier(self.events_table_name))
        # Which of some aggregates have an event of a topic (sessions revoked, say); asked by
        # readers with connections of their own, such as the API's async session gate.
        self.select_originators_with_topic = SQL(
            "SELECT DISTINCT originator_id FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s) AND topic = %s"
        ).format(schema=Identifier(datastore.schema), table=Identifier(self.events_table_name))
        names = {"schema": Identifier(datastore.schema),
                 "table": Identifier(self.events_table_name),
                 "chain": Identifier(f"{self.events_table_name}_chain"),
                 "checkpoints": Identifier(f"{self.events_table_name}_checkpoints"),
                 "digest": SQL(EVENT_DIGEST)}
        self.insert_events_statement = SQL(
            "WITH new AS ("
            " INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%s::{id_type}[], %s::bigint[], %s::text[], %s::bytea[])"
            " RETURNING notification_id, originator_id, originator_version, topic, state),"
            " digested AS (SELECT notification_id, {digest} AS digest FROM new),"
            " chained AS ("
            " INSERT INTO {schema}.{chain} (first_position, last_position, digests, hash)"
            " SELECT min(notification_id), max(notification_id),"
            " array_agg(digest ORDER BY notification_id),"
            " sha256(coalesce((SELECT hash FROM {schema}.{chain}"
            " ORDER BY last_position DESC LIMIT 1), ''::bytea)"
            " || string_agg(digest, ''::bytea ORDER BY notification_id)) FROM digested)"
            " SELECT notification_id FROM new ORDER BY notification_id"
        ).format(**names, id_type=Identifier(datastore.originator_id_type))
        self.sql_create_statements.extend([
            SQL("CREATE TABLE IF NOT EXISTS {schema}.{chain} ("
                "first_position bigint PRIMARY KEY, last_position bigint NOT NULL UNIQUE, "
                "digests bytea[] NOT NULL, hash bytea NOT NULL)").format(**names),
            # Events stored before there was a chain: one first block covers them all.
            SQL("INSERT INTO {schema}.{chain} (first_position, last_position, digests, hash) "
                "SELECT min(notification_id), max(notification_id), "
                "array_agg(digest ORDER BY notification_id), "
                "sha256(string_agg(digest, ''::bytea ORDER BY notification_id)) "
                "FROM (SELECT notification_id, {digest} AS digest FROM {schema}.{table}) AS e "
                "HAVING count(*) > 0 AND NOT EXISTS (SELECT 1 FROM {schema}.{chain})"
                ).format(**names),
            SQL("CREATE TABLE IF NOT EXISTS {schema}.{checkpoints} ("
                "position bigint PRIMARY KEY, hash bytea NOT NULL, signature bytea NOT NULL, "
                "key_id text NOT NULL, signed_at timestamptz NOT NULL DEFAULT now())"
                ).format(**names),
        ])
        self.select_chain_statement = SQL(
            "SELECT first_position, last_position, digests, hash FROM {schema}.{chain} "
            "WHERE last_position > %s ORDER BY first_position LIMIT %s").format(**names)
        self.select_chain_head_statement = SQL(
            "SELECT last_position, hash FROM {schema}.{chain} "
            "ORDER BY last_position DESC LIMIT 1").format(**names)
        self.insert_checkpoint_statement = SQL(
            "INSERT INTO {schema}.{checkpoints} (position, hash, signature, key_id) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (position) DO NOTHING").format(**names)
        self.select_checkpoints_statement = SQL(
            "SELECT position, hash, signature, key_id, signed_at FROM {schema}.{checkpoints} "
            "ORDER BY position").format(**names)
        self.select_log_statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{table} WHERE notification_id > %s "
            "AND (%s::uuid IS NULL OR originator_id = %s) "
            "AND (cardinality(%s::text[]) = 0 OR topic = ANY(%s)) "
            "ORDER BY notification_id LIMIT %s").format(**names)
        self.select_digests_statement = SQL(
            "SELECT first_position, digests FROM {schema}.{chain} "
            "WHERE last_position >= %s AND first_position <= %s").format(**names)
        self.select_events_range_statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{table} WHERE notification_id > %s AND notification_id <= %s "
            "ORDER BY notification_id").format(**names)

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


    def _fetch_ids_after_insert_events(self, curs: Cursor[DictRow],
                                       stored_events: Sequence[StoredEvent],
                                       **kwargs: Any) -> Sequence[int] | None:
        """The ids the insert gave, from its SELECT (the library expects an INSERT's status)."""
        ids = [row["notification_id"] for row in curs.fetchall()]
        if len(ids) != len(stored_events):
            raise ProgrammingError(f"got {len(ids)} notification ids for {len(stored_events)} events")
        return ids

    @contextmanager
    def writers_turn(self) -> Iterator[None]:
        """Hold the writers' turn, across processes, while the block runs and saves a batch."""
        with ExitStack() as turn:
            self._take_turn(turn)
            yield

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as the library does
    def _take_turn(self, turn: ExitStack) -> None:
        """Lock on a connection of its own, kept (with the unlock) in `turn` once taken."""
        with ExitStack() as attempt:  # a stale pooled connection fails here, and the next is tried
            conn = attempt.enter_context(self.datastore.get_connection())
            conn.execute("SELECT pg_advisory_lock(%s)", (WRITERS_TURN,))
            attempt.callback(_release_turn, conn)
            turn.enter_context(attempt.pop_all())

    # The chain, for auditors

    @contextmanager
    def snapshot(self) -> Iterator[Connection[DictRow]]:
        """A connection that sees the store as it is now, however long the reading takes."""
        with self.datastore.get_connection() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield conn
            finally:
                conn.execute("ROLLBACK")

    def chain_blocks(self, conn: Connection[DictRow], after: int, limit: int) -> list[dict[str, Any]]:
        """Blocks of the chain ending after position `after`, in order."""
        return conn.execute(self.select_chain_statement, (after, limit)).fetchall()

    def chain_head(self) -> dict[str, Any] | None:
        with self.datastore.get_connection() as conn:
            return conn.execute(self.select_chain_head_statement).fetchone()

    def stored_events_between(self, conn: Connection[DictRow], after: int,
                              up_to: int) -> list[dict[str, Any]]:
        """The stored rows of positions after `after` up to `up_to`, raw, in order."""
        return conn.execute(self.select_events_range_statement, (after, up_to)).fetchall()

    def log(self, *, after: int, limit: int, originator_id: UUID | None = None,
            topics: Sequence[str] = ()) -> list[Notification]:
        """Stored events after a position, of one aggregate or of some topics, in log order."""
        with self.datastore.get_connection() as conn:
            rows = conn.execute(self.select_log_statement, (
                after, originator_id, originator_id, list(topics), list(topics), limit)).fetchall()
        return [Notification(id=row["notification_id"], originator_id=row["originator_id"],
                             originator_version=row["originator_version"], topic=row["topic"],
                             state=bytes(row["state"])) for row in rows]

    def digests(self, positions: Sequence[int]) -> dict[int, bytes]:
        """The digest the chain holds for each of these positions."""
        if not positions:
            return {}
        with self.datastore.get_connection() as conn:
            blocks = conn.execute(self.select_digests_statement,
                                  (min(positions), max(positions))).fetchall()
        found = {}
        for block in blocks:
            for offset, digest in enumerate(block["digests"]):
                found[block["first_position"] + offset] = bytes(digest)
        return {position: found[position] for position in positions if position in found}

    def checkpoints(self, conn: Connection[DictRow]) -> list[dict[str, Any]]:
        return conn.execute(self.select_checkpoints_statement).fetchall()

    def keep_checkpoint(self, position: int, hash_: bytes, signature: bytes, key_id: str) -> None:
        with self.datastore.get_connection() as conn:
            conn.execute(self.insert_checkpoint_statement, (position, hash_, signature, key_id))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as the library does
    def stored_versions(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, int]:
        """The latest stored version of each of these aggregates that exists, in one query."""
        # One statement on an autocommit connection: one round trip, no BEGIN and ROLLBACK.
        with self.datastore.get_connection() as conn:
            rows = conn.execute(self.stored_versions_statement, (list(aggregate_ids),)).fetchall()
        return {row["originator_id"]: row["version"] for row in rows}


def _release_turn(conn: Connection[DictRow]) -> None:
    with suppress(PsycopgError):  # a connection that broke has released it
        conn.execute("SELECT pg_advisory_unlock(%s)", (WRITERS_TURN,))


def _array(elements: Iterable[str]) -> str:
    """A PostgreSQL array literal of elements already in its text form."""
    return "{" + ",".join(elements) + "}"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
