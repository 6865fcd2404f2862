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
from typing import Any, LiteralString
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
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Composed, Identifier, Literal

# What identifies a stored event, digested by PostgreSQL as it stores it (and by the auditor's
# check, the same way): its position, aggregate, version, topic (length first, so no byte can
# move between topic and state unnoticed) and stored state.
EVENT_DIGEST = ("sha256(int8send(notification_id) || uuid_send(originator_id) || "
                "int8send(originator_version) || int4send(octet_length(topic)) || "
                "convert_to(topic, 'UTF8') || state)")

# The advisory lock of the writers' turn ("gopay-w" in ASCII).
WRITERS_TURN = 0x676F7061792D77


# COPY that writes one JSON object a line, as it is: with these quote and delimiter bytes
# (never found in JSON text), no field is quoted or escaped.
HISTORY_COPY: LiteralString = "COPY ({}) TO STDOUT (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
HISTORY_QUERIES: dict[str, LiteralString] = {
    "events": "SELECT json_build_object('position', notification_id, 'originator_id', "
              "originator_id, 'version', originator_version, 'topic', topic, "
              "'state', translate(encode(state, 'base64'), E'\\n', '')) "
              "FROM {schema}.{table} ORDER BY notification_id",
    "chain": "SELECT json_build_object('first_position', first_position, 'last_position', "
             "last_position, 'digests', (SELECT json_agg(encode(d, 'hex') ORDER BY o) "
             "FROM unnest(digests) WITH ORDINALITY AS u(d, o)), 'hash', encode(hash, 'hex')) "
             "FROM {schema}.{chain} ORDER BY first_position",
    "checkpoints": "SELECT json_build_object('position', position, 'hash', encode(hash, 'hex'), "
                   "'signature', translate(encode(signature, 'base64'), E'\\n', ''), "
                   "'key_id', key_id, 'signed_at', signed_at) "
                   "FROM {schema}.{checkpoints} ORDER BY position",
}
# Each line parsed once (jsonb_to_record), into the table as it was.
HISTORY_LOADS: dict[str, LiteralString] = {
    "events": "INSERT INTO {schema}.{table} (notification_id, originator_id, originator_version, "
              "topic, state) SELECT r.position, r.originator_id, r.version, r.topic, "
              "decode(r.state, 'base64') FROM {lines} AS l, jsonb_to_record(l.line::jsonb) "
              "AS r(position bigint, originator_id uuid, version bigint, topic text, state text) "
              "ORDER BY r.position",
    "chain": "INSERT INTO {schema}.{chain} (first_position, last_position, digests, hash) "
             "SELECT r.first_position, r.last_position, ARRAY(SELECT decode(d, 'hex') "
             "FROM jsonb_array_elements_text(r.digests) WITH ORDINALITY AS u(d, o) ORDER BY o), "
             "decode(r.hash, 'hex') FROM {lines} AS l, jsonb_to_record(l.line::jsonb) "
             "AS r(first_position bigint, last_position bigint, digests jsonb, hash text)",
    "checkpoints": "INSERT INTO {schema}.{checkpoints} (position, hash, signature, key_id, "
                   "signed_at) SELECT r.position, decode(r.hash, 'hex'), "
                   "decode(r.signature, 'base64'), r.key_id, r.signed_at "
                   "FROM {lines} AS l, jsonb_to_record(l.line::jsonb) AS r(position bigint, "
                   "hash text, signature text, key_id text, signed_at timestamptz)",
}


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
        self.select_log_page_statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{table} WHERE notification_id > %s "
            "ORDER BY notification_id LIMIT %s").format(**names)
        self.select_digests_statement = SQL(
            "SELECT first_position, digests FROM {schema}.{chain} "
            "WHERE last_position >= %s AND first_position <= %s").format(**names)
        # The auditor's check, done where the events are: the digests of a range of positions
        # recomputed and compared with those the blocks hold, position by position (a full
        # join: a digest without its event is a missing event, an event without a digest was
        # added behind GoPay's back); only what does not hold comes back.
        self.select_chain_extent_statement = SQL(
            "SELECT least((SELECT min(notification_id) FROM {schema}.{table}), "
            "(SELECT min(first_position) FROM {schema}.{chain})) AS first, "
            "greatest((SELECT max(notification_id) FROM {schema}.{table}), "
            "(SELECT max(last_position) FROM {schema}.{chain})) AS last, "
            "coalesce((SELECT max(last_position) FROM {schema}.{chain}), 0) AS chain_end"
        ).format(**names)
        self.compare_chain_statement = SQL(
            "WITH expected AS ("
            " SELECT b.first_position + u.ordinality - 1 AS position, u.digest"
            " FROM {schema}.{chain} AS b,"
            " unnest(b.digests) WITH ORDINALITY AS u(digest, ordinality)"
            " WHERE b.last_position >= %(first)s AND b.first_position <= %(last)s"
            " AND u.ordinality <= b.last_position - b.first_position + 1),"
            " stored AS (SELECT notification_id AS position, {digest} AS digest"
            " FROM {schema}.{table} WHERE notification_id BETWEEN %(first)s AND %(last)s),"
            " compared AS MATERIALIZED (SELECT coalesce(e.position, s.position) AS position,"
            " CASE WHEN s.position IS NULL THEN 'missing' WHEN e.position IS NULL THEN 'uncovered'"
            " WHEN e.digest = s.digest THEN 'held' ELSE 'changed' END AS finding"
            " FROM (SELECT * FROM expected WHERE position BETWEEN %(first)s AND %(last)s) AS e"
            " FULL JOIN stored AS s ON e.position = s.position)"
            " SELECT count(*) FILTER (WHERE finding = 'held') AS held,"
            " (array_agg(position ORDER BY position) FILTER (WHERE finding <> 'held'))"
            "[:%(limit)s] AS positions,"
            " (array_agg(finding ORDER BY position) FILTER (WHERE finding <> 'held'))"
            "[:%(limit)s] AS findings,"
            " count(*) FILTER (WHERE finding <> 'held') AS found FROM compared"
        ).format(**names)
        # The same comparison, first done block by block: each block's digests (those within
        # the range) against an array of the digests recomputed in position order, with no
        # join and no sort. When every block fits, none overlaps the one before it, each
        # holds and the blocks cover as many positions as there are events, every event holds
        # (a digest covers its position, so equal arrays mean equal position by position):
        # the answer of the full comparison, three times cheaper. Anything else is looked at
        # position by position with the statement above.
        self.compare_blocks_statement = SQL(
            "WITH blocks AS (SELECT b.first_position, b.digests,"
            " cardinality(b.digests) = b.last_position - b.first_position + 1 AS fits,"
            " b.first_position <= lag(b.last_position) OVER (ORDER BY b.first_position)"
            " AS overlapping, greatest(b.first_position, %(first)s) AS low,"
            " least(b.last_position, %(last)s) AS high"
            " FROM {schema}.{chain} AS b"
            " WHERE b.last_position >= %(first)s AND b.first_position <= %(last)s),"
            " compared AS (SELECT fits, overlapping, high - low + 1 AS span,"
            " digests[low - first_position + 1 : high - first_position + 1] = ARRAY("
            "SELECT {digest} FROM {schema}.{table} WHERE notification_id BETWEEN low AND high"
            " ORDER BY notification_id) AS held FROM blocks)"
            " SELECT coalesce(bool_and(fits AND overlapping IS NOT TRUE AND held), false)"
            " AS all_held, coalesce(sum(span), 0) AS covered, (SELECT count(*) FROM"
            " {schema}.{table} WHERE notification_id BETWEEN %(first)s AND %(last)s) AS stored"
            " FROM compared"
        ).format(**names)
        # Blocks that do not chain: a hash that does not follow from the block before it (its
        # stored hash) and this block's digests, a digest count that does not fit its
        # positions, or positions that overlap the block before it.
        self.select_broken_blocks_statement = SQL(
            "SELECT first_position, last_position, NOT fits AS misfit, NOT follows AS unlinked,"
            " overlapping FROM (SELECT first_position, last_position,"
            " cardinality(digests) = last_position - first_position + 1 AS fits,"
            " hash = sha256(coalesce(lag(hash) OVER w, ''::bytea) || (SELECT"
            " string_agg(d, ''::bytea ORDER BY o) FROM unnest(digests) WITH ORDINALITY AS u(d, o)))"
            " AS follows, first_position <= lag(last_position) OVER w AS overlapping"
            " FROM {schema}.{chain} WINDOW w AS (ORDER BY first_position)) AS blocks"
            " WHERE NOT fits OR NOT follows OR overlapping ORDER BY first_position"
        ).format(**names)
        self.select_chain_hashes_statement = SQL(
            "SELECT last_position, hash FROM {schema}.{chain} WHERE last_position = ANY(%s)"
        ).format(**names)
        # The stored states of some topics up to a position, as JSON (the transcoder's format:
        # nothing is compressed or encrypted as a whole; sealed fields are sealed inside it).
        self.select_states_fragment = (
            "SELECT notification_id, originator_id, originator_version, topic, "
            "convert_from(state, 'UTF8')::jsonb AS state FROM {schema}.{table} "
            "WHERE topic = ANY({topics}) AND notification_id <= {up_to}")
        self._names = names
        # The history file (`gopay export`, `gopay import`): each table as JSON lines that
        # PostgreSQL writes and reads itself; binary values in base64 (states, signatures) or hex
        # (digests and hashes, as auditors compare them).
        self.history_out_statements = {
            part: SQL(HISTORY_COPY).format(SQL(query).format(**names))
            for part, query in HISTORY_QUERIES.items()}
        self.history_in_fragments = HISTORY_LOADS
        self.stored_anything_statement = SQL(
            "SELECT EXISTS (SELECT FROM {schema}.{table}) OR EXISTS (SELECT FROM {schema}.{chain}) "
            "OR EXISTS (SELECT FROM {schema}.{checkpoints}) AS stored").format(**names)
        self.continue_positions_statement = SQL(
            "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), "
            "(SELECT max(notification_id) FROM {schema}.{table}))").format(**names)

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
    def snapshot(self, shared: str | None = None) -> Iterator[Connection[DictRow]]:
        """A connection that sees the store as it is now, however long the reading takes; or,
        given a `shared_snapshot` of another connection, exactly as that one sees it."""
        with self.datastore.get_connection() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            if shared is not None:
                conn.execute(SQL("SET TRANSACTION SNAPSHOT {}").format(Literal(shared)))
            # Room for the checks' joins and sorts in memory; and time for a connection whose
            # snapshot others share to wait for them (GoPay's usual limit is 10 s).
            conn.execute("SET LOCAL work_mem = '64MB'")
            # No parallel workers: the checks already run side by side, one a core, and a
            # worker's start and its tuples' trip to the leader are CPU they would take from
            # each other (a scan for a few registrations cost three times its CPU).
            conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            conn.execute("SET LOCAL idle_in_transaction_session_timeout = '15min'")
            try:
                yield conn
            finally:
                conn.execute("ROLLBACK")

    def shared_snapshot(self, conn: Connection[DictRow]) -> str:
        """A name other connections can see `conn`'s snapshot by, while it lasts (so that
        checks of one moment of the store run side by side)."""
        row = conn.execute("SELECT pg_export_snapshot() AS name").fetchone()
        assert row is not None
        return str(row["name"])

    def chain_head(self) -> dict[str, Any] | None:
        with self.datastore.get_connection() as conn:
            return conn.execute(self.select_chain_head_statement).fetchone()

    def chain_extent(self, conn: Connection[DictRow]) -> dict[str, int | None]:
        """The lowest and highest position any event or block names, and where the chain ends."""
        row = conn.execute(self.select_chain_extent_statement).fetchone()
        assert row is not None
        return dict(row)

    def compare_chain(self, conn: Connection[DictRow], first: int, last: int,
                      limit: int) -> dict[str, Any]:
        """Positions `first` to `last` recomputed against the chain: how many held, and the first
        `limit` positions that did not (with what was found: missing, uncovered, changed)."""
        blocks = conn.execute(self.compare_blocks_statement,
                              {"first": first, "last": last}).fetchone()
        assert blocks is not None
        if blocks["all_held"] and blocks["covered"] == blocks["stored"]:
            return {"held": blocks["stored"], "positions": None, "findings": None, "found": 0}
        row = conn.execute(self.compare_chain_statement,
                           {"first": first, "last": last, "limit": limit}).fetchone()
        assert row is not None
        return dict(row)

    def broken_blocks(self, conn: Connection[DictRow]) -> list[dict[str, Any]]:
        """The blocks that do not chain (see the statement), in order."""
        return conn.execute(self.select_broken_blocks_statement).fetchall()

    def chain_hashes(self, conn: Connection[DictRow], positions: Sequence[int]) -> dict[int, bytes]:
        """The stored hash of the blocks that end at these positions."""
        rows = conn.execute(self.select_chain_hashes_statement, (list(positions),)).fetchall()
        return {row["last_position"]: bytes(row["hash"]) for row in rows}

    def stored_states(self, topics: Sequence[str], up_to: int) -> Composed:
        """A query of the events of these topics up to a position, their states as jsonb, for
        checks that PostgreSQL does where the events are (the read models', the books')."""
        return SQL(self.select_states_fragment).format(
            **self._names, topics=Literal(list(topics)), up_to=Literal(up_to))

    def log(self, *, after: int, limit: int, originator_id: UUID | None = None,
            topics: Sequence[str] = ()) -> list[Notification]:
        """Stored events after a position, of one aggregate or of some topics, in log order."""
        with self.datastore.get_connection() as conn:
            rows = conn.execute(self.select_log_statement, (
                after, originator_id, originator_id, list(topics), list(topics), limit)).fetchall()
        return [Notification(id=row["notification_id"], originator_id=row["originator_id"],
                             originator_version=row["originator_version"], topic=row["topic"],
                             state=bytes(row["state"])) for row in rows]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as the library does
    def page_of_log(self, after: int, limit: int) -> list[Notification]:
        """The next `limit` stored events after a position, as `select_notifications` gives
        them, but read in binary as plain rows: a rebuild reads the whole log this way, and
        dictionaries per row and text-encoded states were a fifth of its time."""
        with (self.datastore.get_connection() as conn,
              conn.cursor(row_factory=tuple_row, binary=True) as cursor):
            cursor.execute(self.select_log_page_statement, (after, limit), prepare=True)
            return [Notification(id=id_, originator_id=originator_id,
                                 originator_version=version, topic=topic, state=state)
                    for id_, originator_id, version, topic, state in cursor.fetchall()]

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

    # The history file

    def history_out(self, part: str) -> Composed:
        """The COPY statement that writes a part of the history file ("events", "chain",
        "checkpoints"): one JSON object a line, in position order."""
        return self.history_out_statements[part]

    def history_in(self, part: str, lines: Identifier) -> Composed:
        """The statement that stores a part of a history file from the table of its `lines`."""
        return SQL(self.history_in_fragments[part]).format(**self._names, lines=lines)

    def stored_anything(self, conn: Connection[DictRow]) -> bool:
        """Whether there is any event, block or checkpoint (locking out writers first, so that
        the answer holds until `conn` commits)."""
        self._lock_table(conn.cursor())
        row = conn.execute(self.stored_anything_statement).fetchone()
        return bool(row and row["stored"])

    def continue_positions(self, conn: Connection[DictRow]) -> None:
        """Let new events follow the positions imported (with their positions, not drawn)."""
        conn.execute(self.continue_positions_statement,
                     (f"{self.datastore.schema}.{self.events_table_name}",))

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
