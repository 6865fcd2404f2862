"""Refunds and disputes of one payment: what has been given back or claimed, never more than was paid."""

from __future__ import annotations

from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import CurrencyMismatch, InvalidState
from gopay.aggregates.ledger import LEDGER_NAMESPACE
from gopay.aggregates.money import Money


class RefundTooLarge(InvalidState):
    """Refunds together would give back more than the payment took."""


class DisputeTooLarge(InvalidState):
    """A dispute would claim more than is left of the payment after refunds and disputes."""


class PaymentRefunds(Aggregate):
    """The refunded and disputed totals of one payment.

    Every refund of the payment, and every dispute opened on it, changes this one small
    aggregate in its own commit, so refunds and disputes that race each other are serialised
    by its version: however many arrive together, their sum never passes what was paid.
    """

    @staticmethod
    def id_for(payment_id: UUID) -> UUID:
        return uuid5(LEDGER_NAMESPACE, f"refunds/{payment_id}")

    class Opened(Aggregate.Created):
        payment_id: UUID
        merchant_wallet_id: UUID
        payer_wallet_id: UUID
        paid: int
        currency: str

    @event(Opened)
    def __init__(self, id: UUID, payment_id: UUID, merchant_wallet_id: UUID, payer_wallet_id: UUID,
                 paid: int, currency: str) -> None:
        self.payment_id = payment_id
        self.merchant_wallet_id = merchant_wallet_id
        self.payer_wallet_id = payer_wallet_id
        self.paid = paid
        self.currency = currency
        self.refunded = 0
        self.disputed = 0  # claimed by disputes still open, or won by the customer

    @classmethod
    def open(cls, *, payment_id: UUID, merchant_wallet_id: UUID, payer_wallet_id: UUID,
             paid: Money) -> PaymentRefunds:
        return cls(id=cls.id_for(payment_id), payment_id=payment_id,
                   merchant_wallet_id=merchant_wallet_id, payer_wallet_id=payer_wallet_id,
                   paid=paid.amount, currency=paid.currency)

    @property
    def remaining(self) -> int:
        return self.paid - self.refunded - self.disputed

    def refund(self, money: Money, *, refund_id: UUID) -> None:
        """Give `money` back; refused when it would pass what the payment took."""
        if money.currency != self.currency:
            raise CurrencyMismatch(f"the payment was in {self.currency}, not {money.currency}")
        if money.amount > self.remaining:
            detail = ("this payment has been refunded or disputed in full" if not self.remaining
                      else f"only {self.remaining} of this payment is left to refund")
            raise RefundTooLarge(detail, refundable=self.remaining)
        self._refunded(refund_id=refund_id, payment_id=self.payment_id,
                       merchant_wallet_id=self.merchant_wallet_id, amount=money.amount,
                       currency=money.currency, refunded_total=self.refunded + money.amount)

    class Refunded(Aggregate.Event):
        """Self-contained, so that whoever follows the log (webhooks) needs nothing else."""

        refund_id: UUID
        payment_id: UUID
        merchant_wallet_id: UUID
        amount: int
        currency: str
        refunded_total: int

    @event(Refunded)
    def _refunded(self, refund_id: UUID, payment_id: UUID, merchant_wallet_id: UUID,
                  amount: int, currency: str, refunded_total: int) -> None:
        self.refunded = refunded_total

    def dispute(self, money: Money, *, dispute_id: UUID) -> None:
        """Claim `money` back for a dispute; refused beyond what refunds and disputes left."""
        if money.currency != self.currency:
            raise CurrencyMismatch(f"the payment was in {self.currency}, not {money.currency}")
        if money.amount > self.remaining:
            detail = ("this payment has been refunded or disputed in full" if not self.remaining
                      else f"only {self.remaining} of this payment is left to dispute")
            raise DisputeTooLarge(detail, disputable=self.remaining)
        self._disputed(dispute_id=dispute_id, payment_id=self.payment_id, amount=money.amount,
                       disputed_total=self.disputed + money.amount)

    def drop_dispute(self, *, dispute_id: UUID, amount: int) -> None:
        """A dispute the merchant won claims nothing any more: that much may be refunded again."""
        self._dispute_dropped(dispute_id=dispute_id, payment_id=self.payment_id, amount=amount,
                              disputed_total=self.disputed - amount)

    class Disputed(Aggregate.Event):
        dispute_id: UUID
        payment_id: UUID
        amount: int
        disputed_total: int

    @event(Disputed)
    def _disputed(self, dispute_id: UUID, payment_id: UUID, amount: int,
                  disputed_total: int) -> None:
        self.disputed = disputed_total

    class DisputeDropped(Aggregate.Event):
        dispute_id: UUID
        payment_id: UUID
        amount: int
        disputed_total: int

    @event(DisputeDropped)
    def _dispute_dropped(self, dispute_id: UUID, payment_id: UUID, amount: int,
                         disputed_total: int) -> None:
        self.disputed = disputed_total
