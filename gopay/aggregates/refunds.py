"""Refunds of one payment: what has been given back so far, never more than was paid."""

from __future__ import annotations

from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import CurrencyMismatch, InvalidState
from gopay.aggregates.ledger import LEDGER_NAMESPACE
from gopay.aggregates.money import Money


class RefundTooLarge(InvalidState):
    """Refunds together would give back more than the payment took."""


class PaymentRefunds(Aggregate):
    """The refunded total of one payment.

    Every refund of the payment changes this one small aggregate in the refund's own
    commit, so refunds that race each other are serialised by its version: however many
    arrive together, their sum never passes what was paid.
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

    @classmethod
    def open(cls, *, payment_id: UUID, merchant_wallet_id: UUID, payer_wallet_id: UUID,
             paid: Money) -> PaymentRefunds:
        return cls(id=cls.id_for(payment_id), payment_id=payment_id,
                   merchant_wallet_id=merchant_wallet_id, payer_wallet_id=payer_wallet_id,
                   paid=paid.amount, currency=paid.currency)

    @property
    def remaining(self) -> int:
        return self.paid - self.refunded

    def refund(self, money: Money, *, refund_id: UUID) -> None:
        """Give `money` back; refused when it would pass what the payment took."""
        if money.currency != self.currency:
            raise CurrencyMismatch(f"the payment was in {self.currency}, not {money.currency}")
        if money.amount > self.remaining:
            detail = ("this payment has been refunded in full" if not self.remaining else
                      f"only {self.remaining} of this payment is left to refund")
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
