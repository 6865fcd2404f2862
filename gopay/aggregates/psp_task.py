"""Work with the PSP that must get done: a call for a payment order, or a webhook to apply.

A task is tried until it is done. Each failed attempt records why and when to try again,
so a retry survives any crash; after the last attempt its policy allows, the task is
dead-lettered and waits for staff to send it round again.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import InvalidState
from gopay.aggregates.ledger import LEDGER_NAMESPACE


class TaskKind(StrEnum):
    CALL = "call"  # ask the PSP to charge or pay out, for a payment order
    WEBHOOK = "webhook"  # apply what the PSP told GoPay


class PspTask(Aggregate):
    """One piece of PSP work and how its attempts went."""

    @staticmethod
    def id_for_call(order_id: UUID) -> UUID:
        return uuid5(LEDGER_NAMESPACE, f"psp-call/{order_id}")

    @staticmethod
    def id_for_webhook(event_id: str) -> UUID:
        """A webhook delivered twice is one task: its second arrival finds the first."""
        return uuid5(LEDGER_NAMESPACE, f"psp-webhook/{event_id}")

    class Created(Aggregate.Created):
        kind: str
        operation: str
        order_id: UUID | None
        payload: dict[str, Any]
        due_at: str

    @event(Created)
    def __init__(self, id: UUID, kind: str, operation: str, order_id: UUID | None,
                 payload: Mapping[str, Any], due_at: str) -> None:
        self.kind = TaskKind(kind)
        self.operation = operation
        self.order_id = order_id
        self.payload: Mapping[str, Any] = MappingProxyType(dict(payload))
        self.due_at = due_at
        self.attempts = 0
        self.last_error = ""
        self.dead = False
        self.done = False
        self.outcome = ""

    def attempt_failed(self, error: str, *, retry_at: str | None) -> None:
        """An attempt did not get the work done: try again at `retry_at`, or never (dead letter)."""
        if self.done:
            raise InvalidState("this task is done")
        self._attempt_failed(error=error[:500], retry_at=retry_at)

    def postpone(self, until: str, reason: str) -> None:
        """Nothing failed, but the outcome is not known yet (the PSP is still working on it)."""
        if not self.done:
            self._postponed(until=until, reason=reason)

    def requeue(self, *, by: UUID, at: str) -> None:
        """Staff send a dead-lettered task round again."""
        if not self.dead:
            raise InvalidState("only a dead-lettered task can be tried again")
        self._requeued(by=by, at=at)

    def complete(self, outcome: str) -> None:
        """Done; completing it again changes nothing."""
        if not self.done:
            self._completed(outcome=outcome)

    class AttemptFailed(Aggregate.Event):
        error: str
        retry_at: str | None

    @event(AttemptFailed)
    def _attempt_failed(self, error: str, retry_at: str | None) -> None:
        self.attempts += 1
        self.last_error = error
        self.dead = retry_at is None
        self.due_at = retry_at or self.due_at

    class Postponed(Aggregate.Event):
        until: str
        reason: str

    @event(Postponed)
    def _postponed(self, until: str, reason: str) -> None:
        self.due_at = until

    class Requeued(Aggregate.Event):
        by: UUID
        at: str

    @event(Requeued)
    def _requeued(self, by: UUID, at: str) -> None:
        self.dead = False
        self.due_at = at

    class Completed(Aggregate.Event):
        outcome: str

    @event(Completed)
    def _completed(self, outcome: str) -> None:
        self.done = True
        self.dead = False
        self.outcome = outcome
