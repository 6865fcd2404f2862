"""The payment order: one movement of money from request to its final state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import InvalidState
from gopay.aggregates.ledger import LEDGER_NAMESPACE, Posting, TransactionType, journal_entry


class OrderStatus(StrEnum):
    CREATED = "created"
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REVERSED = "reversed"


# Which status may follow which: anything else is an illegal transition.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.CREATED: frozenset({OrderStatus.PENDING, OrderStatus.SUCCEEDED, OrderStatus.FAILED}),
    OrderStatus.PENDING: frozenset({OrderStatus.SUCCEEDED, OrderStatus.FAILED}),
    OrderStatus.SUCCEEDED: frozenset({OrderStatus.REVERSED}),
    OrderStatus.FAILED: frozenset(),
    OrderStatus.REVERSED: frozenset(),
}


def order_id_for(caller_id: UUID, operation: str, idempotency_key: str) -> UUID:
    """The id a caller's idempotency key stands for: a retry finds the same order."""
    return uuid5(LEDGER_NAMESPACE, f"order/{caller_id}/{operation}/{idempotency_key}")


class PaymentOrder(Aggregate):
    """The seed's payment_order: who pays whom, how much, and how far it has got."""

    class Created(Aggregate.Created):
        order_type: str
        initiated_by: UUID
        payer_wallet_id: UUID | None
        payee_wallet_id: UUID | None
        amount: int
        currency: str
        note: str
        request_fingerprint: str

    @event(Created)
    def __init__(self, id: UUID, order_type: str, initiated_by: UUID, payer_wallet_id: UUID | None,
                 payee_wallet_id: UUID | None, amount: int, currency: str, note: str,
                 request_fingerprint: str) -> None:
        self.order_type = TransactionType(order_type)
        self.initiated_by = initiated_by
        self.payer_wallet_id = payer_wallet_id
        self.payee_wallet_id = payee_wallet_id
        self.amount = amount
        self.currency = currency
        self.note = note
        self.request_fingerprint = request_fingerprint
        self.status = OrderStatus.CREATED
        self.postings: tuple[Posting, ...] = ()
        self.reversal_postings: tuple[Posting, ...] = ()
        self.planned_postings: tuple[Posting, ...] = ()  # what completing a deferred order books
        self.psp_reference: str | None = None
        self.failure_reason: str | None = None
        self.failure_detail = ""

    @property
    def ledger_updated(self) -> bool:
        return bool(self.postings)

    def mark_pending(self, *, psp_reference: str) -> None:
        """The PSP has accepted the order; its answer comes later."""
        self._check_transition(OrderStatus.PENDING)
        self._marked_pending(psp_reference=psp_reference)

    def note_psp_reference(self, psp_reference: str) -> None:
        """The PSP's name for the order, once it is known; the status stays as it is."""
        if self.psp_reference is None and psp_reference:
            self._psp_reference_noted(psp_reference=psp_reference)

    def plan(self, *postings: Posting) -> None:
        """The money moves later (when the PSP has paid, say); `postings` is what it will book."""
        self._check_transition(OrderStatus.PENDING)
        entry = journal_entry(*postings)
        self._planned(postings=[posting.as_record() for posting in entry])

    def succeed(self, *postings: Posting) -> None:
        """Record the journal entry that completes the order (for a deferred one, the plan)."""
        self._check_transition(OrderStatus.SUCCEEDED)
        entry = journal_entry(*(postings or self.planned_postings))
        self._succeeded(postings=[posting.as_record() for posting in entry])

    def reverse(self, *, reason: str) -> None:
        """Undo a succeeded order with the mirror journal entry (every posting negated)."""
        self._check_transition(OrderStatus.REVERSED)
        mirror = journal_entry(*(-posting for posting in self.postings))
        self._reversed(reason=reason, postings=[posting.as_record() for posting in mirror])

    def fail(self, *, reason: str, detail: str = "") -> None:
        """The order ends without moving money; `reason` is a stable code."""
        self._check_transition(OrderStatus.FAILED)
        self._failed(reason=reason, detail=detail)

    def _check_transition(self, new_status: OrderStatus) -> None:
        if new_status not in TRANSITIONS[self.status]:
            raise InvalidState(f"a {self.status} payment order cannot become {new_status}")

    class MarkedPending(Aggregate.Event):
        psp_reference: str

    @event(MarkedPending)
    def _marked_pending(self, psp_reference: str) -> None:
        self.status = OrderStatus.PENDING
        self.psp_reference = psp_reference

    class PspReferenceNoted(Aggregate.Event):
        psp_reference: str

    @event(PspReferenceNoted)
    def _psp_reference_noted(self, psp_reference: str) -> None:
        self.psp_reference = psp_reference

    class Planned(Aggregate.Event):
        postings: list[dict[str, Any]]

    @event(Planned)
    def _planned(self, postings: Sequence[Mapping[str, Any]]) -> None:
        self.status = OrderStatus.PENDING
        self.planned_postings = tuple(Posting.from_record(p) for p in postings)

    class Succeeded(Aggregate.Event):
        postings: list[dict[str, Any]]

    @event(Succeeded)
    def _succeeded(self, postings: Sequence[Mapping[str, Any]]) -> None:
        self.status = OrderStatus.SUCCEEDED
        self.postings = tuple(Posting.from_record(p) for p in postings)

    class Reversed(Aggregate.Event):
        reason: str
        postings: list[dict[str, Any]]

    @event(Reversed)
    def _reversed(self, reason: str, postings: Sequence[Mapping[str, Any]]) -> None:
        self.status = OrderStatus.REVERSED
        self.reversal_postings = tuple(Posting.from_record(p) for p in postings)

    class Failed(Aggregate.Event):
        reason: str
        detail: str

    @event(Failed)
    def _failed(self, reason: str, detail: str) -> None:
        self.status = OrderStatus.FAILED
        self.failure_reason = reason
        self.failure_detail = detail
