"""The payment order: one movement of money from request to its final state."""

from __future__ import annotations

from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import InvalidState
from gopay.aggregates.ledger import LEDGER_NAMESPACE, Posting, journal_entry

# Which status may follow which: anything else is an illegal transition.
TRANSITIONS: dict[str, frozenset[str]] = {
    "created": frozenset({"pending", "succeeded", "failed"}),
    "pending": frozenset({"succeeded", "failed"}),
    "succeeded": frozenset({"reversed"}),
    "failed": frozenset(),
    "reversed": frozenset(),
}


def order_id_for(caller_id: UUID, operation: str, idempotency_key: str) -> UUID:
    """The id a caller's idempotency key stands for: a retry finds the same order."""
    return uuid5(LEDGER_NAMESPACE, f"order/{caller_id}/{operation}/{idempotency_key}")


class PaymentOrder(Aggregate):
    """The seed's payment_order: who pays whom, how much, and how far it has got."""

    @event("Created")
    def __init__(self, id: UUID, order_type: str, initiated_by: UUID, payer_wallet_id: UUID | None,
                 payee_wallet_id: UUID | None, amount: int, currency: str, note: str,
                 request_fingerprint: str) -> None:
        self.order_type = order_type
        self.initiated_by = initiated_by
        self.payer_wallet_id = payer_wallet_id
        self.payee_wallet_id = payee_wallet_id
        self.amount = amount
        self.currency = currency
        self.note = note
        self.request_fingerprint = request_fingerprint
        self.status = "created"
        self.postings: list[dict[str, object]] = []
        self.psp_reference: str | None = None
        self.failure_reason: str | None = None
        self.failure_detail = ""

    @property
    def ledger_updated(self) -> bool:
        return bool(self.postings)

    def mark_pending(self, *, psp_reference: str) -> None:
        """The PSP has accepted the order; its answer comes later."""
        self._check_transition("pending")
        self._marked_pending(psp_reference=psp_reference)

    def succeed(self, *postings: Posting) -> None:
        """Record the journal entry that completes the order."""
        self._check_transition("succeeded")
        entry = journal_entry(*postings)
        self._succeeded(postings=[posting.as_record() for posting in entry])

    def reverse(self, *, reason: str) -> None:
        """Undo a succeeded order with the mirror journal entry (every posting negated)."""
        self._check_transition("reversed")
        mirror = journal_entry(*(Posting.from_record(p) for p in self.postings))
        self._reversed(reason=reason, postings=[
            {**posting.as_record(), "amount": -posting.amount} for posting in mirror])

    def fail(self, *, reason: str, detail: str = "") -> None:
        """The order ends without moving money; `reason` is a stable code."""
        self._check_transition("failed")
        self._failed(reason=reason, detail=detail)

    def _check_transition(self, new_status: str) -> None:
        if new_status not in TRANSITIONS[self.status]:
            raise InvalidState(f"a {self.status} payment order cannot become {new_status}")

    @event("MarkedPending")
    def _marked_pending(self, psp_reference: str) -> None:
        self.status = "pending"
        self.psp_reference = psp_reference

    @event("Succeeded")
    def _succeeded(self, postings: list[dict[str, object]]) -> None:
        self.status = "succeeded"
        self.postings = postings

    @event("Reversed")
    def _reversed(self, reason: str, postings: list[dict[str, object]]) -> None:
        self.status = "reversed"
        self.reversal_postings = postings

    @event("Failed")
    def _failed(self, reason: str, detail: str) -> None:
        self.status = "failed"
        self.failure_reason = reason
        self.failure_detail = detail
