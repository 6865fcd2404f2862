"""A proposed manual ledger entry that a second staff member must approve (maker-checker).

One staff member proposes; another approves, and the approval applies the entry in the same
commit, exactly once: the proposal's state machine (`proposed → applied | rejected`) and
optimistic concurrency on it make a second approval, even a simultaneous one, fail.
Nobody approves their own proposal.
"""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import Forbidden, InvalidState


class ProposalStatus(StrEnum):
    PROPOSED = "proposed"
    APPLIED = "applied"
    REJECTED = "rejected"


class AdjustmentProposal(Aggregate):
    """Move `amount` into (credit) or out of (debit) `account`, against `counter_account`."""

    class Proposed(Aggregate.Created):
        account: str
        counter_account: str
        direction: str
        amount: int
        currency: str
        reason: str
        proposed_by: UUID
        request_fingerprint: str

    @event(Proposed)
    def __init__(self, id: UUID, account: str, counter_account: str, direction: str, amount: int,
                 currency: str, reason: str, proposed_by: UUID, request_fingerprint: str) -> None:
        self.account = account
        self.counter_account = counter_account
        self.direction = direction
        self.amount = amount
        self.currency = currency
        self.reason = reason
        self.proposed_by = proposed_by
        self.request_fingerprint = request_fingerprint
        self.status = ProposalStatus.PROPOSED
        self.decided_by: UUID | None = None
        self.order_id: UUID | None = None
        self.rejection_reason = ""

    def check_approver(self, by: UUID) -> None:
        """Whether `by` may approve: anyone of the right roles but the proposer, while it is open."""
        if by == self.proposed_by:
            raise Forbidden("you proposed this adjustment: another staff member must approve it")
        if self.status != ProposalStatus.PROPOSED:
            raise InvalidState(f"this proposal is already {self.status}")

    def apply(self, *, by: UUID, order_id: UUID) -> None:
        """Approved by `by`: the entry was booked as payment order `order_id`."""
        self.check_approver(by)
        self._applied(approved_by=by, order_id=order_id)

    def reject(self, *, by: UUID, reason: str) -> None:
        """Turned down by a checker, or withdrawn by its proposer; nothing is booked."""
        if self.status != ProposalStatus.PROPOSED:
            raise InvalidState(f"this proposal is already {self.status}")
        self._rejected(rejected_by=by, reason=reason)

    class Applied(Aggregate.Event):
        approved_by: UUID
        order_id: UUID

    @event(Applied)
    def _applied(self, approved_by: UUID, order_id: UUID) -> None:
        self.status = ProposalStatus.APPLIED
        self.decided_by = approved_by
        self.order_id = order_id

    class Rejected(Aggregate.Event):
        rejected_by: UUID
        reason: str

    @event(Rejected)
    def _rejected(self, rejected_by: UUID, reason: str) -> None:
        self.status = ProposalStatus.REJECTED
        self.decided_by = rejected_by
        self.rejection_reason = reason
