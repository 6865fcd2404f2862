"""The auditor's check of the event log: the chain recomputed, its checkpoints' signatures, and
the books and read models compared with what the events say.

Every batch of events is chained as it is stored (`gopay/recorder.py`): a block per batch of
consecutive positions, with each event's digest and a hash over the block before it. Here the
digests are computed again from the stored rows, in one consistent snapshot: an event changed,
removed or moved shows as a digest that does not match at its position; an event no block
covers was added behind GoPay's back; a block whose hash does not follow from the one before
it was forged. A rewrite of the whole chain would be consistent, so checkpoints (the chain's
head at a moment) are signed with a key the database never holds: a chain that no longer
leads to a signed hash, or ends before a signed position, was rewritten or cut.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import psycopg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.utils import get_topic
from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.sql import SQL

from gopay.aggregates.payment_order import PaymentOrder
from gopay.application import GoPay
from gopay.progress import Progress, quiet
from gopay.projections.read_side import ReadSide
from gopay.projections.view import Check
from gopay.projections.wallets import Books
from gopay.recorder import EventRecorder

# Positions compared per statement: one step of the progress, and the joins' working memory;
# short enough that the last ranges even out the connections' ends (about 0.05 s each).
RANGE = 25_000
# Connections that check side by side, each seeing the same snapshot of the store.
CONNECTIONS = max(2, min(4, os.cpu_count() or 2))
# Positions named per range, and per kind of finding in the verdict.
SHOWN, SHOWN_PER_KIND = 1000, 20
FINDINGS = {
    "changed": "the events at {positions} are not what was stored",
    "missing": "the events at {positions} are missing",
    "uncovered": "the events at {positions} are covered by no block",
}
JOURNAL_TOPICS = (get_topic(PaymentOrder.Succeeded), get_topic(PaymentOrder.Reversed))

Task = tuple[Callable[[Connection[DictRow]], Any], int]  # what to run, its weight in the progress


@dataclass(frozen=True)
class Verdict:
    """What the check found; `ok` when everything holds."""

    events_checked: int
    chain_ok: bool
    first_bad_position: int | None
    ledger_balanced: bool
    projections_match: bool
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.chain_ok and self.ledger_balanced and self.projections_match


class Signer:
    """Signs and checks checkpoints with an Ed25519 key held outside the database."""

    def __init__(self, private_key_b64: str) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_key_b64))
        public = self._key.public_key().public_bytes_raw()
        self.key_id = hashlib.sha256(public).hexdigest()[:16]

    def sign(self, position: int, chain_hash: bytes) -> bytes:
        return self._key.sign(_checkpoint_message(position, chain_hash))

    def verifies(self, position: int, chain_hash: bytes, signature: bytes) -> bool:
        try:
            self._key.public_key().verify(signature, _checkpoint_message(position, chain_hash))
        except InvalidSignature:
            return False
        return True


def checkpoint(app: GoPay, signer: Signer) -> int | None:
    """Sign the chain's head now; the position signed (None while the log is empty)."""
    recorder = _recorder(app)
    head = recorder.chain_head()
    if head is None:
        return None
    head_hash = bytes(head["hash"])
    recorder.keep_checkpoint(head["last_position"], head_hash,
                             signer.sign(head["last_position"], head_hash), signer.key_id)
    return int(head["last_position"])


def verify(app: GoPay, signer: Signer, read_side: ReadSide | None = None,
           progress: Progress = quiet) -> Verdict:
    """Check the chain, its checkpoints, the books and (given a read side) the read models, all
    at one moment of the store, side by side on several connections."""
    recorder = _recorder(app)
    with recorder.snapshot() as conn:
        extent = recorder.chain_extent(conn)
        ranges = _ranges(extent["first"], extent["last"])
        span = sum(last - first + 1 for first, last in ranges)
        # The payment orders' check answers for the books on its way, reading the journal
        # entries once for both. Without a read side the books are a task of their own; where
        # that check did not answer (an entry it cannot read, the views standing apart) they
        # are asked after the others, on this connection.
        books = Books()
        checks = read_side.checks(books) if read_side else []
        # Weights for the progress: the chain is about half the work, the rest the other half.
        progress(0, total=2 * span)
        tasks: list[Task] = [(_against(check, recorder), span // (len(checks) + 1))
                             for check in checks]
        if read_side is None:
            tasks.append((partial(_books_task, recorder, books), span // (len(checks) + 1)))
        tasks += [(partial(recorder.compare_chain, first=first, last=last, limit=SHOWN),
                   last - first + 1) for first, last in ranges]
        tasks.append((recorder.broken_blocks, 0))
        results = _side_by_side(recorder, conn, tasks, progress)
        mismatches = [problem for found in results[:len(checks)] for problem in found]
        chain_ranges = results[len(checks) + (read_side is None):-1]  # after the books' task
        checked, bad, problems = _chain_findings(chain_ranges)
        _broken_links(results[-1], bad, problems)
        _check_checkpoints(recorder, conn, signer, extent["chain_end"] or 0, bad, problems)
        balanced = (books.balanced if books.balanced is not None
                    else books_balance(recorder, conn))
    if not balanced:
        problems.append("the ledger does not sum to zero in every currency")
    problems += mismatches
    return Verdict(checked, not bad, min(bad) if bad else None, balanced, not mismatches,
                   tuple(problems))


def chain_problems(recorder: EventRecorder, conn: Connection[DictRow], signer: Signer) -> list[str]:
    """What is wrong with the chain, its checkpoints and the books as `conn` sees them, on that
    one connection (for a history being imported, which no other connection sees yet)."""
    extent = recorder.chain_extent(conn)
    _, bad, problems = _chain_findings([
        recorder.compare_chain(conn, first=first, last=last, limit=SHOWN)
        for first, last in _ranges(extent["first"], extent["last"])])
    _broken_links(recorder.broken_blocks(conn), bad, problems)
    _check_checkpoints(recorder, conn, signer, extent["chain_end"] or 0, bad, problems)
    if not books_balance(recorder, conn):
        problems.append("the ledger does not sum to zero in every currency")
    return problems


def drift(app: GoPay, read_side: ReadSide) -> list[str]:
    """Where the read models say something else than the events (nothing when they agree)."""
    recorder = _recorder(app)
    with recorder.snapshot() as conn:
        results = _side_by_side(recorder, conn, [
            (_against(check, recorder), 1) for check in read_side.checks()])
    return [problem for found in results for problem in found]


def _side_by_side(recorder: EventRecorder, conn: Connection[DictRow], tasks: list[Task],
                  progress: Progress = quiet) -> list[Any]:
    """Each task's answer, run on a few connections of their own (one a thread) that all see
    `conn`'s snapshot, a few at a time (the biggest first: give them in that order)."""
    shared = recorder.shared_snapshot(conn)
    # One connection a thread, kept for all the tasks that thread runs: a snapshot set up
    # per task was a dozen round trips each (the chain alone comes in many ranges). A task
    # that fails inside a savepoint leaves the connection usable for the next.
    mine, opening = threading.local(), threading.Lock()

    with ExitStack() as connections:
        def run(task: Callable[[Connection[DictRow]], Any], weight: int) -> Any:
            if not hasattr(mine, "conn"):
                with opening:
                    mine.conn = connections.enter_context(recorder.snapshot(shared))
            answer = task(mine.conn)
            progress(weight)
            return answer

        with ThreadPoolExecutor(CONNECTIONS, thread_name_prefix="audit") as pool:
            return list(pool.map(lambda task: run(*task), tasks))


def _against(check: Check, recorder: EventRecorder) -> Callable[[Connection[DictRow]], list[str]]:
    """A read model's check, against the events this recorder stores."""
    return lambda conn: check(conn, recorder.stored_states)


def _ranges(first: int | None, last: int | None) -> list[tuple[int, int]]:
    if first is None or last is None:
        return []
    return [(start, min(start + RANGE - 1, last)) for start in range(first, last + 1, RANGE)]


def _chain_findings(compared: list[dict[str, Any]]) -> tuple[int, list[int], list[str]]:
    """What the ranges' comparisons add up to: how many positions held, the first bad position
    of each range, and what was found where."""
    checked, bad, found, unnamed = 0, [], defaultdict(list), 0
    for each in compared:
        checked += each["held"]
        if each["found"]:
            bad.append(each["positions"][0])
            for position, finding in zip(each["positions"], each["findings"], strict=True):
                found[finding].append(position)
            unnamed += each["found"] - len(each["positions"])
    problems = [FINDINGS[finding].format(positions=_listed(positions))
                for finding, positions in found.items()]
    if unnamed:
        problems.append(f"and {unnamed} more positions that do not hold")
    return checked, bad, problems


def _broken_links(broken_blocks: list[dict[str, Any]], bad: list[int], problems: list[str]) -> None:
    """Each block must follow from the one before it and hold one digest per position: what
    the blocks that do not (`EventRecorder.broken_blocks`) say."""
    for block in broken_blocks:
        bad.append(block["first_position"])
        span = f"the block from {block['first_position']} to {block['last_position']}"
        for fault, saying in (("misfit", "does not hold one digest each"),
                              ("unlinked", "does not follow from the one before it"),
                              ("overlapping", "overlaps the one before it")):
            if block[fault]:
                problems.append(f"{span} {saying}")


def _check_checkpoints(recorder: EventRecorder, conn: Connection[DictRow], signer: Signer,
                       chain_end: int, bad: list[int], problems: list[str]) -> None:
    """Each signed checkpoint must be GoPay's, within the chain, and on the chain as it is."""
    signed = recorder.checkpoints(conn)
    hashes = recorder.chain_hashes(conn, [c["position"] for c in signed])
    for checkpoint_ in signed:
        position, signed_hash = checkpoint_["position"], bytes(checkpoint_["hash"])
        if not signer.verifies(position, signed_hash, bytes(checkpoint_["signature"])):
            bad.append(position)
            problems.append(f"checkpoint at {position} is not signed by GoPay's key")
        elif position > chain_end:
            bad.append(chain_end + 1)
            problems.append(f"checkpoint: the chain ends at {chain_end}, before the signed "
                            f"position {position} (its tail was cut)")
        elif hashes.get(position) != signed_hash:
            bad.append(position)
            problems.append(f"checkpoint: the chain at {position} is not the one signed")


def _books_task(recorder: EventRecorder, books: Books, conn: Connection[DictRow]) -> None:
    """The books as a task beside the others: the answer goes in `books`, not in the results."""
    books.balanced = books_balance(recorder, conn)


def books_balance(recorder: EventRecorder, conn: Connection[DictRow]) -> bool:
    """Whether every journal entry in the log sums to zero per currency (an entry that cannot
    even be read does not)."""
    entries = recorder.stored_states(JOURNAL_TOPICS, up_to=2**63 - 1)
    statement = SQL(
        "SELECT NOT EXISTS (SELECT FROM ({entries}) AS e, "
        "jsonb_to_recordset(e.state -> 'postings') AS p(amount numeric, currency text) "
        "GROUP BY e.notification_id, p.currency HAVING sum(p.amount) <> 0) AS balanced"
    ).format(entries=entries)
    try:
        with conn.transaction():
            row = conn.execute(statement).fetchone()
    except psycopg.DataError:  # a state that is no JSON, postings that are no list of objects, ...
        return False
    return bool(row and row["balanced"])


def _listed(positions: list[int]) -> str:
    return ", ".join(map(str, positions[:SHOWN_PER_KIND])) + (
        f" (and {len(positions) - SHOWN_PER_KIND} more)" if len(positions) > SHOWN_PER_KIND else "")


def _recorder(app: GoPay) -> EventRecorder:
    recorder = app.recorder
    if not isinstance(recorder, EventRecorder):
        raise TypeError("the audit chain is kept by GoPay's PostgreSQL recorder")
    return recorder


def _checkpoint_message(position: int, chain_hash: bytes) -> bytes:
    return b"gopay-checkpoint/v1/" + struct.pack(">q", position) + chain_hash
