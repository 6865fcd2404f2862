"""Refunds: a merchant gives a payment back, all of it or part, to the payer's wallet.

A refund is a money flow of its own (type `refund`, in both histories) from the merchant's
wallet to the wallet that paid, whatever brought the money into that wallet: a payment made
with money topped up from a card is refunded to the wallet, never to the card. Each refund
also counts itself on the payment's `PaymentRefunds` in the same commit, which keeps their
sum within what was paid.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from gopay.aggregates.errors import InvalidState, NotFound
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.refunds import PaymentRefunds, RefundTooLarge
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Context
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, money_flow
from gopay.group_commit import UnitOfWork

# Payments a merchant received and may give back.
REFUNDABLE = frozenset({TransactionType.QR_PAYMENT})


@dataclass(frozen=True, kw_only=True)
class RefundPayment(MoneyCommand):
    """Give `amount` of a payment back (all that is left of it when None), by its payee."""

    operation = "refund"
    merchant_wallet_id: UUID
    payment_id: UUID
    amount: int | None = None


def payment_refunds(unit: UnitOfWork, payment: PaymentOrder) -> PaymentRefunds:
    """What has been refunded or disputed of a payment: where refunds and disputes meet, so
    that together they never claim more than was paid."""
    refunds = unit.find(PaymentRefunds.id_for(payment.id), PaymentRefunds)
    if refunds is None:
        # Both callers checked them: a payment someone paid to someone.
        assert payment.payee_wallet_id is not None
        assert payment.payer_wallet_id is not None
        refunds = PaymentRefunds.open(payment_id=payment.id,
                                      merchant_wallet_id=payment.payee_wallet_id,
                                      payer_wallet_id=payment.payer_wallet_id,
                                      paid=Money(payment.amount, payment.currency))
        unit.add(refunds)
    return refunds


@money_flow(RefundPayment)
def refund_payment(command: RefundPayment, unit: UnitOfWork, context: Context) -> MoneyFlow:
    payment = unit.find(command.payment_id, PaymentOrder)
    if (payment is None or payment.order_type not in REFUNDABLE
            or payment.payee_wallet_id != command.merchant_wallet_id):
        raise NotFound("payment not found")  # another merchant's payment does not exist
    if payment.status != OrderStatus.SUCCEEDED or payment.payer_wallet_id is None:
        raise InvalidState(f"a {payment.status} payment cannot be refunded")
    refunds = payment_refunds(unit, payment)
    if command.amount is None and not refunds.remaining:
        raise RefundTooLarge("this payment has been refunded in full", refundable=0)
    money = Money.positive(refunds.remaining if command.amount is None else command.amount,
                           payment.currency)
    refunds.refund(money, refund_id=command.order_id)
    merchant_wallet = unit.get(command.merchant_wallet_id, Wallet)
    payer_wallet = unit.get(payment.payer_wallet_id, Wallet)
    # Giving a customer's money back is not spending, and no balance cap may refuse it.
    return MoneyFlow(TransactionType.REFUND, money, payer=merchant_wallet, payee=payer_wallet,
                     reference=str(payment.id), limits=False)
