"""A dispute: a customer's claim that a payment should be given back, from opening to decision."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import InvalidState, ValidationFailed
from gopay.aggregates.ledger import LEDGER_NAMESPACE

MAX_REASON, MAX_EVIDENCE, MAX_EVIDENCE_ITEMS = 2_000, 10_000, 50


class DisputeKind(StrEnum):
    PAYMENT = "payment"  # the payer of a payment in GoPay disputes it
    CHARGEBACK = "chargeback"  # a card's bank took a top-up back through the PSP


class DisputeStatus(StrEnum):
    OPEN = "open"
    WON = "won"  # decided for the customer: the money went back to them
    LOST = "lost"  # decided for the merchant: the held money is theirs again


class Outcome(StrEnum):
    CUSTOMER = "customer"
    MERCHANT = "merchant"


@dataclass(frozen=True)
class Evidence:
    """What the payee said in its defence, when, and who said it."""

    by: UUID
    text: str
    at: str


class Dispute(Aggregate):
    """A disputed payment: the amount claimed and held, the payee's evidence, staff's decision.

    The money itself moves on the dispute's own payment order (`order_id`), a refund from
    the payee to the customer that waits, held, for the decision: deciding completes or
    cancels that order in the same commit as the dispute records the decision, so it
    happens once.
    """

    @staticmethod
    def id_for(order_id: UUID) -> UUID:
        return uuid5(LEDGER_NAMESPACE, f"dispute/{order_id}")

    class Opened(Aggregate.Created):
        kind: str
        payment_id: UUID
        order_id: UUID
        customer_wallet_id: UUID
        merchant_wallet_id: UUID | None
        opened_by: UUID
        amount: int
        currency: str
        covered: int
        reason: str

    @event(Opened)
    def __init__(self, id: UUID, kind: str, payment_id: UUID, order_id: UUID,
                 customer_wallet_id: UUID, merchant_wallet_id: UUID | None, opened_by: UUID,
                 amount: int, currency: str, covered: int, reason: str) -> None:
        self.kind = DisputeKind(kind)
        self.payment_id = payment_id
        self.order_id = order_id
        self.customer_wallet_id = customer_wallet_id
        self.merchant_wallet_id = merchant_wallet_id
        self.opened_by = opened_by
        self.amount = amount
        self.currency = currency
        # What the payee's wallet had for it: held (a chargeback: taken back) at once.
        self.covered = covered
        self.reason = reason
        self.evidence: tuple[Evidence, ...] = ()
        self.status = DisputeStatus.OPEN
        self.decided_by: UUID | None = None

    @classmethod
    def open(cls, *, kind: DisputeKind, payment_id: UUID, order_id: UUID,
             customer_wallet_id: UUID, merchant_wallet_id: UUID | None, opened_by: UUID,
             amount: int, currency: str, covered: int, reason: str) -> Dispute:
        reason = reason.strip()
        if not reason or len(reason) > MAX_REASON:
            raise ValidationFailed(f"reason must be 1 to {MAX_REASON} characters")
        return cls(id=cls.id_for(order_id), kind=kind, payment_id=payment_id, order_id=order_id,
                   customer_wallet_id=customer_wallet_id, merchant_wallet_id=merchant_wallet_id,
                   opened_by=opened_by, amount=amount, currency=currency, covered=covered,
                   reason=reason)

    @property
    def owed(self) -> int:
        """What the payee's wallet could not hold: GoPay advances it (receivables) on a win."""
        return self.amount - self.covered

    def add_evidence(self, text: str, *, by: UUID, at: str) -> None:
        """The payee's answer, while the dispute is open."""
        self._check_open()
        text = text.strip()
        if not text or len(text) > MAX_EVIDENCE:
            raise ValidationFailed(f"text must be 1 to {MAX_EVIDENCE} characters")
        if len(self.evidence) >= MAX_EVIDENCE_ITEMS:
            raise InvalidState(f"a dispute takes at most {MAX_EVIDENCE_ITEMS} pieces of evidence")
        self._evidence_added(by=by, text=text, at=at)

    def decide(self, outcome: Outcome, *, by: UUID | None) -> None:
        """Staff's (or, for a chargeback, the card's bank's) decision: once."""
        self._check_open()
        status = DisputeStatus.WON if outcome == Outcome.CUSTOMER else DisputeStatus.LOST
        self._decided(outcome=outcome.value, status=status.value, by=by)

    def _check_open(self) -> None:
        if self.status != DisputeStatus.OPEN:
            raise InvalidState(f"this dispute is {self.status} already")

    class EvidenceAdded(Aggregate.Event):
        by: UUID
        text: str
        at: str

    @event(EvidenceAdded)
    def _evidence_added(self, by: UUID, text: str, at: str) -> None:
        self.evidence = (*self.evidence, Evidence(by, text, at))

    class Decided(Aggregate.Event):
        outcome: str
        status: str
        by: UUID | None

    @event(Decided)
    def _decided(self, outcome: str, status: str, by: UUID | None) -> None:
        self.status = DisputeStatus(status)
        self.decided_by = by
