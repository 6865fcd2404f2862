"""A reconciliation run: one PSP settlement file compared with the ledger, what it found, and
which of its differences finance moved to suspense.

The run's id derives from the file's SHA-256 (and the days it was asked to cover), so the
same file twice is the same run. The findings are recorded in chunks (`ItemsFound`), so a
file with many differences never has to be held whole; the run itself keeps only counts.
A run whose process died half-way is started again under a new attempt, which discards
the findings of the one before. A file found unreadable half-way abandons its run, whose
findings then count for nothing; the same bytes again get the same refusal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import DomainError, InvalidState
from gopay.aggregates.ledger import LEDGER_NAMESPACE


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    ABANDONED = "abandoned"  # the file turned out not to be a settlement file GoPay can read


class ItemKind(StrEnum):
    """What is wrong with a line of the file (or an order of the ledger): the summary's keys."""

    MISSING_IN_LEDGER = "missing_in_ledger"
    MISSING_IN_PSP = "missing_in_psp"
    AMOUNT_MISMATCH = "amount_mismatch"
    STATUS_MISMATCH = "status_mismatch"
    FEE_MISMATCH = "fee_mismatch"
    DUPLICATES = "duplicates"


SUMMARY_KEYS = ("matched", *(kind.value for kind in ItemKind))


class RunInProgress(DomainError):
    """The same file is being reconciled right now, by another request."""

    code = "request_in_progress"


def run_id_for(file_sha256: str, requested_days: Sequence[str]) -> UUID:
    """The run of a file: the same bytes (for the same requested days) are the same run."""
    return uuid5(LEDGER_NAMESPACE, f"reconciliation/{file_sha256}/{','.join(sorted(requested_days))}")


def item_id_for(run_id: UUID, seq: int) -> UUID:
    """The opaque id of a run's `seq`-th finding."""
    return uuid5(LEDGER_NAMESPACE, f"reconciliation-item/{run_id}/{seq}")


class ReconciliationRun(Aggregate):
    """One settlement file against the ledger: started, its findings, its summary."""

    class Started(Aggregate.Created):
        file_sha256: str
        file_name: str
        requested_days: list[str]
        source: str
        started_by: UUID | None
        attempt: UUID
        at: str

    @event(Started)
    def __init__(self, id: UUID, file_sha256: str, file_name: str, requested_days: Sequence[str],
                 source: str, started_by: UUID | None, attempt: UUID, at: str) -> None:
        self.file_sha256 = file_sha256
        self.file_name = file_name
        self.requested_days = tuple(requested_days)
        self.period = tuple(requested_days)  # and the days of the file's lines, once read
        self.source = source
        self.started_by = started_by
        self.attempt = attempt
        self.status = RunStatus.RUNNING
        self.last_progress_at = at
        self.items_found = 0
        self.lines = 0
        self.summary: Mapping[str, int] = MappingProxyType({})
        self.posted_to_suspense: Mapping[int, UUID] = MappingProxyType({})
        self.abandoned_because = ""

    def restart(self, *, attempt: UUID, by: UUID | None, at: str) -> None:
        """Begin again (the attempt before died half-way): its findings no longer count."""
        if self.status != RunStatus.RUNNING:
            raise InvalidState(f"this run is {self.status}")
        self._restarted(attempt=attempt, by=by, at=at)

    def record_items(self, *, attempt: UUID, first: int, items: Sequence[Mapping[str, Any]],
                     at: str) -> None:
        """Findings `first`, `first + 1`, ... of this attempt, in the file's order."""
        self._check_attempt(attempt)
        if first != self.items_found:
            raise InvalidState(f"findings from {self.items_found} are expected, not from {first}")
        self._items_found(attempt=attempt, first=first, items=[dict(item) for item in items], at=at)

    def finish(self, *, attempt: UUID, period: Sequence[str], lines: int,
               summary: Mapping[str, int], report: Mapping[str, Any], at: str) -> None:
        """The run is complete: it compared the UTC days of `period`, and `summary` counts
        each kind, in agreement with the findings recorded."""
        self._check_attempt(attempt)
        if set(summary) != set(SUMMARY_KEYS):
            raise InvalidState(f"a summary counts exactly {', '.join(SUMMARY_KEYS)}")
        if sum(count for key, count in summary.items() if key != "matched") != self.items_found:
            raise InvalidState("the summary does not count the findings recorded")
        self._finished(attempt=attempt, period=list(period), lines=lines, summary=dict(summary),
                       report=dict(report), at=at)

    def abandon(self, *, attempt: UUID, reason: str, at: str) -> None:
        """The file is not one GoPay can read (`reason` says where): the run stops here."""
        self._check_attempt(attempt)
        self._abandoned(attempt=attempt, reason=reason, at=at)

    def post_to_suspense(self, *, seq: int, order_id: UUID, by: UUID) -> None:
        """Finding `seq`'s difference was booked to suspense by order `order_id` (once)."""
        if self.status != RunStatus.COMPLETED:
            raise InvalidState("the run is not complete yet")
        if not 0 <= seq < self.items_found:
            raise InvalidState("this run has no such finding")
        if seq in self.posted_to_suspense:
            raise InvalidState("this finding is already in suspense "
                               f"(order {self.posted_to_suspense[seq]})")
        self._posted_to_suspense(seq=seq, order_id=order_id, by=by)

    def _check_attempt(self, attempt: UUID) -> None:
        if self.status != RunStatus.RUNNING:
            raise InvalidState(f"this run is {self.status}")
        if attempt != self.attempt:
            raise RunInProgress("another attempt at this run has taken over")

    class Restarted(Aggregate.Event):
        attempt: UUID
        by: UUID | None
        at: str

    @event(Restarted)
    def _restarted(self, attempt: UUID, by: UUID | None, at: str) -> None:
        self.attempt = attempt
        self.items_found = 0
        self.last_progress_at = at

    class ItemsFound(Aggregate.Event):
        attempt: UUID
        first: int
        items: list[dict[str, Any]]
        at: str

    @event(ItemsFound)
    def _items_found(self, attempt: UUID, first: int, items: Sequence[Mapping[str, Any]],
                     at: str) -> None:
        self.items_found = first + len(items)
        self.last_progress_at = at

    class Finished(Aggregate.Event):
        attempt: UUID
        period: list[str]
        lines: int
        summary: dict[str, int]
        report: dict[str, Any]
        at: str

    @event(Finished)
    def _finished(self, attempt: UUID, period: Sequence[str], lines: int,
                  summary: Mapping[str, int], report: Mapping[str, Any], at: str) -> None:
        self.status = RunStatus.COMPLETED
        self.period = tuple(period)
        self.lines = lines
        self.summary = MappingProxyType(dict(summary))
        self.last_progress_at = at

    class Abandoned(Aggregate.Event):
        attempt: UUID
        reason: str
        at: str

    @event(Abandoned)
    def _abandoned(self, attempt: UUID, reason: str, at: str) -> None:
        self.status = RunStatus.ABANDONED
        self.items_found = 0
        self.abandoned_because = reason
        self.last_progress_at = at

    class PostedToSuspense(Aggregate.Event):
        seq: int
        order_id: UUID
        by: UUID

    @event(PostedToSuspense)
    def _posted_to_suspense(self, seq: int, order_id: UUID, by: UUID) -> None:
        self.posted_to_suspense = MappingProxyType({**self.posted_to_suspense, seq: order_id})
