"""Disputes: the payer of a payment claims it back, the payee answers, staff decide.

Opening a dispute is a money flow of its own: a refund from the payee to the payer that
waits for the decision, its money held in the payee's wallet at once (what the wallet cannot
cover is planned from `receivables`, so the customer never gets less). It counts itself on
the payment's `PaymentRefunds` in the same commit as refunds do, so refunds and disputes
that race never claim more than was paid. The decision completes that refund (the customer
wins: one journal entry, from the hold and the receivable) or cancels it (the merchant
wins: the hold is released), in the same commit as the dispute records it: once.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from gopay.aggregates.dispute import Dispute, DisputeKind, Outcome
from gopay.aggregates.errors import DomainError, InvalidState, NotFound
from gopay.aggregates.ledger import SystemAccount, TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.refunds import DisputeTooLarge, PaymentRefunds
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Command, Context, in_batch
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, cancel, complete, money_flow
from gopay.commands.refunds import payment_refunds
from gopay.group_commit import UnitOfWork

# Payments their payer may dispute.
DISPUTABLE = frozenset({TransactionType.QR_PAYMENT, TransactionType.BILL_PAYMENT,
                        TransactionType.TRANSFER})


class DisputeWindowClosed(DomainError):
    """The payment is older than the dispute window."""

    code = "dispute_window_closed"


@dataclass(frozen=True, kw_only=True)
class OpenDispute(MoneyCommand):
    """Dispute `amount` of a payment (all that is left of it when None), by its payer."""

    operation = "dispute"
    customer_wallet_id: UUID
    payment_id: UUID
    reason: str
    amount: int | None = None


@dataclass(frozen=True, kw_only=True)
class AddEvidence(Command[Dispute]):
    """The payee's answer to a dispute of a payment it received."""

    dispute_id: UUID
    payee_wallet_id: UUID
    by: UUID
    text: str


@dataclass(frozen=True, kw_only=True)
class ResolveDispute(Command[Dispute]):
    """Staff decide a dispute: for the customer (refunded) or the merchant (hold released)."""

    dispute_id: UUID
    staff_id: UUID
    outcome: Outcome


@money_flow(OpenDispute)
def open_dispute(command: OpenDispute, unit: UnitOfWork, context: Context) -> MoneyFlow:
    payment = unit.find(command.payment_id, PaymentOrder)
    if (payment is None or payment.order_type not in DISPUTABLE
            or payment.payer_wallet_id != command.customer_wallet_id):
        raise NotFound("payment not found")  # only its payer may dispute a payment
    if payment.status != OrderStatus.SUCCEEDED or payment.payee_wallet_id is None:
        raise InvalidState(f"a {payment.status} payment cannot be disputed")
    if context.clock() - payment.created_on > context.dispute_window:
        raise DisputeWindowClosed(f"a payment may be disputed for {context.dispute_window.days} "
                                  "days after it was made")
    refunds = payment_refunds(unit, payment)
    if command.amount is None and not refunds.remaining:
        raise DisputeTooLarge("this payment has been refunded or disputed in full", disputable=0)
    money = Money.positive(refunds.remaining if command.amount is None else command.amount,
                           payment.currency)
    dispute_id = Dispute.id_for(command.order_id)
    refunds.dispute(money, dispute_id=dispute_id)
    payee = unit.get(payment.payee_wallet_id, Wallet)
    customer = unit.get(payment.payer_wallet_id, Wallet)
    unit.add(Dispute.open(kind=DisputeKind.PAYMENT, payment_id=payment.id,
                          order_id=command.order_id, customer_wallet_id=customer.id,
                          merchant_wallet_id=payee.id, opened_by=command.caller_id,
                          amount=money.amount, currency=money.currency,
                          covered=max(0, min(money.amount, payee.available)),
                          reason=command.reason))
    # Given back whatever the customer's tier caps; the payee's wallet holds what it can.
    return MoneyFlow(TransactionType.REFUND, money, payer=payee, payee=customer,
                     reference=str(payment.id), limits=False, deferred=True,
                     charges_fee=False, shortfall=SystemAccount.RECEIVABLES)


@in_batch(AddEvidence)
def add_evidence(command: AddEvidence, unit: UnitOfWork, context: Context) -> Dispute:
    dispute = unit.find(command.dispute_id, Dispute)
    if dispute is None or dispute.merchant_wallet_id != command.payee_wallet_id:
        raise NotFound("dispute not found")  # only the payee answers a dispute
    dispute.add_evidence(command.text, by=command.by, at=context.clock().isoformat())
    return dispute


@in_batch(ResolveDispute)
def resolve_dispute(command: ResolveDispute, unit: UnitOfWork, context: Context) -> Dispute:
    dispute = unit.find(command.dispute_id, Dispute)
    if dispute is None:
        raise NotFound("dispute not found")
    dispute.decide(command.outcome, by=command.staff_id)  # refused once decided
    order = unit.get(dispute.order_id, PaymentOrder)
    if command.outcome == Outcome.CUSTOMER:
        complete(order, unit)
    else:
        cancel(order, unit, reason="dispute_lost", detail="the dispute was decided for the payee")
        unit.get(PaymentRefunds.id_for(dispute.payment_id), PaymentRefunds).drop_dispute(
            dispute_id=dispute.id, amount=dispute.amount)
    return dispute
