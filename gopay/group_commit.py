"""Group commit: commands that arrive together are checked one by one and saved in one transaction.

Each command runs against a `UnitOfWork`, which sees the changes of the commands before it
in the batch. A command that breaks a rule is undone alone and answered at once. The
others' events are saved with one `save()`: one lock of the event table, one fsync for the
whole batch. If another process changed an aggregate first (a version conflict), only the
commands that touched it, and those after them that touched what they touched, run again;
the rest are saved as they are. Every caller gets its answer after its events are durable.

Aggregates this process last saved, of the kinds commands come back to, are kept in memory
(`KnownState`) and used without a read. They can be stale when several processes share the
database, which costs nothing unsafe: a stale success fails to save (the version is taken)
and runs again on fresh state, a refusal decided on remembered state is checked once more on
fresh state first, and so is a decision resting on a remembered aggregate the command read
but did not change (one query per batch compares those versions with the store).

Several processes (API workers, the worker, other machines) write one after another: a batch
runs and is saved in the writers' turn, a lock in the database that one process holds at a
time. Taking the turn, a process first reads what the others stored since it last looked and
brings the aggregates it remembers up to date with those events, so its batch rarely meets
a version it did not know; measured, the conflicts of two API processes on the same wallets
cost them two thirds of one process's throughput. Taking turns still halves each process's
batches, so the API processes of one machine hand their payments to one of them
(`gopay.api.one_writer`), and only processes on other machines and the worker take turns
with it. Without a turn (in memory) one process is assumed, and the version checks above
still guard every save.

A blocking caller leads a batch for everyone queued when nobody else is leading (flat
combining), so the same code serves one test thread and forty request threads. An
`asyncio` caller never blocks its event loop: it queues its command, a writer thread leads
the batch, and the answer comes back to the loop as a future.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast
from uuid import UUID

from cachetools import LRUCache
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Notification
from prometheus_client import Counter, Histogram

from gopay.aggregates.errors import DomainError, NotFound

log = logging.getLogger(__name__)

T = TypeVar("T")
TAggregate = TypeVar("TAggregate", bound=Aggregate)

BATCH_SIZE = Histogram("gopay_commit_batch_commands", "Commands saved per group commit",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
CONFLICTS = Counter("gopay_commit_conflicts_total",
                    "Group commits that lost a version race to another process")
CAUGHT_UP = Counter("gopay_commit_caught_up_events_total",
                    "Events of other writers read on taking the writers' turn")

# Enough to amortise the fsync, small enough to keep one transaction short.
MAX_BATCH = 256
# A command that keeps losing races is given up on after this many rounds.
MAX_ROUNDS = 100
# Other writers' events read at most per turn; after more, everything remembered is dropped.
MAX_CATCH_UP = 20_000


# The latest stored version of each of these aggregates that exists (one query).
StoredVersions = Callable[[Sequence[UUID]], dict[UUID, int]]
# Holds the writers' turn (across processes) while its block runs.
WritersTurn = Callable[[], AbstractContextManager[object]]


class StaleRead(Exception):
    """A command's decision rests on remembered state: run it again on fresh state first."""


class KnownState:
    """The aggregates this process last saved, as they were saved (bounded, least recent out)."""

    def __init__(self, size: int = 100_000) -> None:
        self._cache: LRUCache[UUID, Aggregate] = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    def get(self, aggregate_id: UUID) -> Aggregate | None:
        with self._lock:
            return self._cache.get(aggregate_id)

    def put(self, aggregates: Iterable[Aggregate]) -> None:
        with self._lock:
            for aggregate in aggregates:
                self._cache[aggregate.id] = aggregate

    def forget(self, aggregate_ids: Iterable[UUID]) -> None:
        with self._lock:
            for aggregate_id in aggregate_ids:
                self._cache.pop(aggregate_id, None)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


class UnitOfWork:
    """The aggregates one batch reads and changes."""

    def __init__(self, app: Application[UUID], known: KnownState) -> None:
        self._app = app
        self._known = known
        self._aggregates: dict[UUID, Aggregate | None] = {}
        self.loaded_versions: dict[UUID, int | None] = {}
        self.remembered: set[UUID] = set()  # read from memory, not from the store
        self._before: dict[UUID, Aggregate | None] = {}
        self._rechecking = False

    def find(self, aggregate_id: UUID, kind: type[TAggregate]) -> TAggregate | None:
        if aggregate_id not in self._aggregates:
            aggregate = self._known.get(aggregate_id)
            if aggregate is not None:
                self.remembered.add(aggregate_id)
            else:
                try:
                    aggregate = self._app.repository.get(aggregate_id)
                except AggregateNotFoundError:
                    aggregate = None
            aggregate = _clone(aggregate)
            self._aggregates[aggregate_id] = aggregate
            self.loaded_versions[aggregate_id] = aggregate.version if aggregate else None
        self._remember(aggregate_id)
        found = self._aggregates[aggregate_id]
        return found if isinstance(found, kind) else None

    def get(self, aggregate_id: UUID, kind: type[TAggregate]) -> TAggregate:
        """`find`, for an aggregate that must exist: 404 otherwise."""
        found = self.find(aggregate_id, kind)
        if found is None:
            raise NotFound(f"{kind.__name__.lower()} not found")
        return found

    def add(self, *aggregates: Aggregate | None) -> None:
        """New aggregates the current command created."""
        for aggregate in aggregates:
            if aggregate is not None:
                self._remember(aggregate.id)
                self.loaded_versions.setdefault(aggregate.id, None)
                self._aggregates[aggregate.id] = aggregate

    # One command at a time

    def begin(self, *, rechecking: bool = False) -> None:
        self._before = {}
        self._rechecking = rechecking

    def confirm_fresh(self) -> None:
        """Before recording a refusal: make sure it was not decided on remembered state."""
        if not self._rechecking and self.touched() & self.remembered:
            raise StaleRead

    def touched(self) -> set[UUID]:
        return set(self._before)

    def rollback(self) -> None:
        """Undo the current command: its aggregates return to how it found them."""
        for aggregate_id, before in self._before.items():
            self._aggregates[aggregate_id] = before
        self._before = {}

    def finish(self) -> list[Any]:
        """The events the current command produced: new aggregates' first, then the rest."""
        events: list[Any] = []
        for aggregate_id in self._before:
            aggregate = self._aggregates[aggregate_id]
            if aggregate is not None:
                events.extend(aggregate.collect_events())
        events.sort(key=lambda event: event.originator_version != 1)
        self._before = {}
        return events

    def aggregates(self, aggregate_ids: Iterable[UUID]) -> list[Aggregate]:
        return [a for i in aggregate_ids if (a := self._aggregates.get(i)) is not None]

    def prefetch_absent(self, aggregate_ids: Sequence[UUID], stored: StoredVersions) -> None:
        """Learn in one query which of these ids (new orders, mostly) nobody has saved yet;
        an id many commands probe (the fraud rules) is asked about once."""
        unknown = [i for i in dict.fromkeys(aggregate_ids) if self._known.get(i) is None]
        if unknown:
            for aggregate_id in set(unknown) - set(stored(unknown)):
                self._aggregates[aggregate_id] = None
                self.loaded_versions[aggregate_id] = None

    def _remember(self, aggregate_id: UUID) -> None:
        if aggregate_id not in self._before:
            self._before[aggregate_id] = _clone(self._aggregates.get(aggregate_id))


def _clone(aggregate: TAggregate | None) -> TAggregate | None:
    """A copy to change freely. Aggregates hold only immutable values (a test checks every
    class), so a shallow copy with its own pending events will do, at a fraction of
    deepcopy's cost."""
    if aggregate is None:
        return None
    clone = copy.copy(aggregate)
    clone.__dict__["_pending_events"] = list(aggregate.pending_events)
    return clone


@dataclass(eq=False)
class _Pending(Generic[T]):
    command: Callable[[UnitOfWork], T]
    probes: tuple[UUID, ...] = ()
    done: bool = False  # blocking callers learn of it through the batch-done condition
    result: Any = None
    error: BaseException | None = None
    events: list[Any] = field(default_factory=list)
    touched: set[UUID] = field(default_factory=set)
    position: int = 0
    rounds: int = 0
    recheck: bool = False  # run again on fresh state before a refusal stands
    future: asyncio.Future[None] | None = None  # an asyncio caller's, on its own loop

    def answer(self, *, error: BaseException | None = None, position: int = 0) -> None:
        self.error = error
        self.position = position
        self.done = True
        if self.future is not None:
            self.future.get_loop().call_soon_threadsafe(_resolve, self.future)


class GroupCommitter:
    """Runs commands in batches against one application; see the module docstring."""

    def __init__(self, app: Application[UUID], stored: StoredVersions, *,
                 remember: Callable[[Aggregate], bool] = lambda _: True,
                 turn: WritersTurn | None = None, max_batch: int = MAX_BATCH) -> None:
        self._app = app
        self._remember = remember
        self._stored = stored
        self._turn = turn
        self._max_batch = max_batch
        self.known = KnownState()
        self._seen: int | None = None  # the log position up to which `known` has followed
        self._queue: list[_Pending[Any]] = []
        self._queue_lock = threading.Lock()
        self._leading = threading.Lock()
        self._batch_done = threading.Condition()
        self._work = threading.Event()
        self._writer: threading.Thread | None = None
        self.batches = 0

    def execute(self, command: Callable[[UnitOfWork], T],
                probes: tuple[UUID, ...] = ()) -> tuple[T, int]:
        """Run `command` in the next batch; returns its result and its last log position.

        `probes` are ids the command will look up that usually do not exist yet (its own new
        order): the batch asks the store about all of them in one query.
        """
        pending: _Pending[T] = _Pending(command, probes)
        with self._queue_lock:
            self._queue.append(pending)
        while not pending.done:
            if self._leading.acquire(blocking=False):
                try:
                    self._lead_one_batch()
                finally:
                    self._leading.release()
                    with self._batch_done:
                        self._batch_done.notify_all()
            else:
                with self._batch_done:
                    if not pending.done:
                        self._batch_done.wait(0.05)
        if pending.error is not None:
            raise pending.error
        return pending.result, pending.position

    async def execute_async(self, command: Callable[[UnitOfWork], T],
                            probes: tuple[UUID, ...] = ()) -> tuple[T, int]:
        """`execute` for a coroutine: the writer thread runs the batch, the loop stays free."""
        pending: _Pending[T] = _Pending(command, probes,
                                        future=asyncio.get_running_loop().create_future())
        with self._queue_lock:
            self._queue.append(pending)
            if self._writer is None:
                self._writer = threading.Thread(target=self._write, name="group-commit",
                                                daemon=True)
                self._writer.start()
        self._work.set()
        assert pending.future is not None
        # A cancelled caller (the client went away) does not cancel the command itself.
        await asyncio.shield(pending.future)
        if pending.error is not None:
            raise pending.error
        return pending.result, pending.position

    def _write(self) -> None:
        """The writer thread: leads batches while anything waits in the queue."""
        while True:
            self._work.wait()
            self._work.clear()
            while self._queue:
                try:
                    with self._leading:
                        self._lead_one_batch()
                except Exception:  # a bug must not end the thread every async caller needs
                    log.exception("group commit writer failed")
                with self._batch_done:
                    self._batch_done.notify_all()

    def _lead_one_batch(self) -> None:
        with self._queue_lock:
            batch = self._queue[: self._max_batch]
            del self._queue[: len(batch)]
        if not batch:
            return
        self.batches += 1  # counted before any caller hears its answer
        unit = UnitOfWork(self._app, self.known)
        try:
            with self._turn() if self._turn else nullcontext():
                head = self._catch_up() if self._turn else None
                unit.prefetch_absent([i for pending in batch for i in pending.probes],
                                     self._stored)
                accepted, again = self._run_commands(unit, batch)
                again += self._save(unit, accepted, head)
        except Exception as error:  # the store failed: this batch's callers hear it, nobody else's
            log.exception("group commit failed")
            for pending in batch:
                if not pending.done:
                    pending.answer(error=error)
            return
        for pending in again:
            pending.rounds += 1
            if pending.rounds >= MAX_ROUNDS:
                pending.answer(error=RuntimeError("too many version conflicts"))
        again = [pending for pending in again if not pending.done]
        if again:
            with self._queue_lock:
                self._queue[:0] = again

    def _catch_up(self) -> int:
        """In the writers' turn: apply what other processes stored since this one last looked
        to the aggregates it remembers; returns the log's head."""
        recorder = self._app.recorder
        if self._seen is None:
            self._seen = recorder.max_notification_id() or 0
            return self._seen
        stored = recorder.select_notifications(self._seen + 1, MAX_CATCH_UP)
        if len(stored) == MAX_CATCH_UP:  # long away: start afresh
            self.known.clear()
            self._seen = recorder.max_notification_id() or 0
            return self._seen
        for notification in stored:
            self._follow(notification)
            self._seen = notification.id
        if stored:
            CAUGHT_UP.inc(len(stored))
        return self._seen

    def _follow(self, stored: Notification) -> None:
        """One event another writer stored: the remembered aggregate takes it, or is dropped."""
        aggregate_id = cast(UUID, stored.originator_id)
        known = self.known.get(aggregate_id)
        if known is None or stored.originator_version <= known.version:
            return  # not remembered, or this process's own event
        if stored.originator_version != known.version + 1:
            self.known.forget([aggregate_id])
            return
        event = cast(Aggregate.Event, self._app.mapper.to_domain_event(stored))
        updated = event.mutate(_clone(known))
        self.known.put([updated] if updated is not None else [])

    def _run_commands(self, unit: UnitOfWork, batch: list[_Pending[Any]]
                      ) -> tuple[list[_Pending[Any]], list[_Pending[Any]]]:
        accepted: list[_Pending[Any]] = []
        again: list[_Pending[Any]] = []
        for pending in batch:
            unit.begin(rechecking=pending.recheck)
            try:
                pending.result = pending.command(unit)
            except Exception as error:  # noqa: BLE001 - a broken rule (or a bug) fails this command alone
                remembered = unit.touched() & unit.remembered
                unit.rollback()
                refused = isinstance(error, (DomainError, StaleRead))
                if refused and remembered and not pending.recheck:
                    # Decided on state read from memory: check it on fresh state first.
                    self.known.forget(remembered)
                    pending.recheck = True
                    again.append(pending)
                else:
                    pending.answer(error=error)
                continue
            pending.touched = unit.touched()
            pending.events = unit.finish()
            accepted.append(pending)
        return accepted, again

    def _save(self, unit: UnitOfWork, accepted: list[_Pending[Any]],
              head: int | None) -> list[_Pending[Any]]:
        """Save what can be saved; return the commands that must run again."""
        again: list[_Pending[Any]] = []
        unsaved: set[UUID] = set()  # aggregates whose working state holds unsaved changes

        def run_again(stale: set[UUID]) -> list[_Pending[Any]]:
            keep, retry = _split(accepted, stale)
            self.known.forget(stale)
            unsaved.update(*(pending.touched for pending in retry))
            again.extend(retry)
            return keep

        # A decision can rest on a remembered aggregate it does not change (unfreezing a wallet
        # remembered as unfrozen does nothing); no version check would catch that one, so ask.
        written = {event.originator_id for pending in accepted for event in pending.events}
        read_only = set().union(*(pending.touched for pending in accepted)) & unit.remembered
        if read_only - written:
            stale = self._stale(sorted(read_only - written), unit.loaded_versions)
            if stale:
                accepted = run_again(stale)
        while accepted:
            events = [event for pending in accepted for event in pending.events]
            try:
                # The event store directly: `Application.save` would collect the events
                # again, checking each against a runtime Protocol.
                recordings = self._app.events.put(events) if events else []
            except IntegrityError:
                CONFLICTS.inc()
                ids = sorted({event.originator_id for event in events})
                stale = self._stale(ids, unit.loaded_versions)
                accepted = run_again(stale or set(ids))
                continue
            positions = {(r.domain_event.originator_id, r.domain_event.originator_version):
                         r.notification.id for r in recordings}
            # A command that changed nothing (a repeated request) read only what was committed
            # before this batch: the log's head shows it.
            last = (max(positions.values(), default=0) or head
                    or self._app.recorder.max_notification_id() or 0)
            if positions and head is not None and min(positions.values()) == head + 1:
                self._seen = last  # nobody stored anything between: no need to read it back
            BATCH_SIZE.observe(len(accepted))
            touched = set().union(*(pending.touched for pending in accepted))
            saved = unit.aggregates(touched - unsaved)
            self.known.put(filter(self._remember, saved))
            self.known.forget([*unsaved, *(a.id for a in saved if not self._remember(a))])
            for pending in accepted:
                pending.answer(position=max(
                    (positions[(e.originator_id, e.originator_version)] for e in pending.events),
                    default=last))
            break
        return again


    def _stale(self, aggregate_ids: Sequence[UUID], loaded: dict[UUID, int | None]) -> set[UUID]:
        """Which of these aggregates another writer changed since this batch read them."""
        stored = self._stored(aggregate_ids)
        return {i for i in aggregate_ids if stored.get(i) != loaded.get(i)}


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _split(accepted: list[_Pending[Any]], stale: set[UUID]
           ) -> tuple[list[_Pending[Any]], list[_Pending[Any]]]:
    """Commands untouched by `stale` aggregates, directly or through an earlier retried command."""
    tainted = set(stale)
    keep, again = [], []
    for pending in accepted:
        if pending.touched & tainted:
            tainted |= pending.touched
            again.append(pending)
        else:
            keep.append(pending)
    return keep, again
