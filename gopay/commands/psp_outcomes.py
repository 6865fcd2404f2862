"""What the PSP did, recorded once: charges and payouts settled, chargebacks, tasks finished.

The same outcome can reach GoPay three ways (the PSP's answer, a status query, a webhook),
twice each, in any order. Each is recorded through the payment order's state machine: only
a pending order can succeed or fail, so whichever comes first settles it and the others
change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from gopay.aggregates.dispute import Dispute, DisputeKind, Outcome
from gopay.aggregates.errors import InvalidState, NotFound, ValidationFailed
from gopay.aggregates.ledger import SystemAccount, TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.payment_method import PaymentMethod
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.psp_task import PspTask, TaskKind
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Command, Context, in_batch
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, cancel, complete, money_flow
from gopay.group_commit import UnitOfWork
from gopay.psp.port import OperationStatus

# The orders a call to the PSP (or to the operators' gateway, for a recharge) completes.
SETTLED_BY_CALLS = (TransactionType.TOPUP, TransactionType.PAYOUT, TransactionType.SETTLEMENT,
                    TransactionType.RECHARGE)


@dataclass(frozen=True, kw_only=True)
class SettleWithPsp(Command[PaymentOrder]):
    """Record what the PSP did for a top-up, payout, settlement or recharge; the task that
    learnt it is done."""

    order_id: UUID
    status: OperationStatus
    psp_reference: str
    fee: int = 0
    failure_reason: str | None = None
    task_id: UUID | None = None
    # When to ask again, if the PSP is still working on it.
    recheck_at: str | None = None


@dataclass(frozen=True, kw_only=True)
class ChargeBack(MoneyCommand):
    """The payer's bank took a charge back: the top-up's wallet gives the money back, and
    what it cannot is owed to GoPay (receivables), never lost; a dispute of the top-up,
    decided by the bank, records it for the customer."""

    operation = "chargeback"
    topup_id: UUID
    money: Money
    psp_fee: int = 0


@dataclass(frozen=True, kw_only=True)
class ReceiveWebhook(Command[PspTask | None]):
    """Keep a webhook as a task to apply (a second delivery finds the first one's task).

    `settled`: the order it is about was found settled already (a final status stays
    final), so the task is kept done at once, with this outcome: one command, not two.
    """

    event_id: str
    event_type: str
    order_id: UUID | None
    data: Mapping[str, Any]
    settled: str | None = None


@dataclass(frozen=True, kw_only=True)
class FailAttempt(Command[PspTask]):
    """An attempt at a task did not get it done: try again at `retry_at`, or dead-letter it."""

    task_id: UUID
    error: str
    retry_at: str | None


@dataclass(frozen=True, kw_only=True)
class CompleteTask(Command[PspTask]):
    task_id: UUID
    outcome: str


@dataclass(frozen=True, kw_only=True)
class RetryDeadLetter(Command[PspTask]):
    """Staff send a dead-lettered task round again, now."""

    staff_id: UUID
    task_id: UUID


def saved_method(unit: UnitOfWork, owner_id: UUID, method_id: UUID, kinds: tuple[str, ...],
                 refusal: str) -> PaymentMethod:
    """The owner's saved method of one of these kinds (anyone else's does not exist)."""
    method = unit.find(method_id, PaymentMethod)
    if method is None or method.owner_id != owner_id or method.removed:
        raise NotFound("payment method not found")
    if method.method_type not in kinds:
        raise ValidationFailed(refusal)
    return method


def shown(method: PaymentMethod) -> str:
    """A method as a statement names it: brand, provider or country, and its last four."""
    details = method.details
    name = details.get("brand") or details.get("provider") or details.get("country") or ""
    last4 = details.get("last4") or str(details.get("account", ""))[-4:]
    return f"{name} ...{last4}".strip()


def psp_call(context: Context, order_id: UUID, operation: str, method: PaymentMethod) -> PspTask:
    """The task of asking the PSP to charge or pay out for an order, saved with the order."""
    return PspTask(id=PspTask.id_for_call(order_id), kind=TaskKind.CALL, operation=operation,
                   order_id=order_id,
                   payload={"payment_method_id": str(method.id), "owner_id": str(method.owner_id)},
                   due_at=(context.clock() + context.psp_call_grace).isoformat())


@in_batch(SettleWithPsp)
def settle_with_psp(command: SettleWithPsp, unit: UnitOfWork, context: Context) -> PaymentOrder:
    order = unit.get(command.order_id, PaymentOrder)
    task = unit.find(command.task_id, PspTask) if command.task_id else None
    if order.order_type not in SETTLED_BY_CALLS:
        raise ValidationFailed("only top-ups, payouts, settlements and recharges are settled "
                               "with the PSP (or the operators' gateway)")
    if order.status != OrderStatus.PENDING:  # settled already: this is the same news again
        _finish(unit, order, task, f"already {order.status}")
        return order
    order.note_psp_reference(command.psp_reference)
    if command.status == OperationStatus.PENDING:
        if task is not None and command.recheck_at is not None:
            task.postpone(command.recheck_at, "the PSP is still working on it")
        return order
    if command.status == OperationStatus.SUCCEEDED:
        complete(order, unit, psp_fee=Money(command.fee, order.currency) if command.fee else None)
    else:
        cancel(order, unit, reason=command.failure_reason or "psp_failed",
               detail="the payment service provider did not carry it out")
    _finish(unit, order, task, str(command.status))
    return order


@money_flow(ChargeBack)
def charge_back(command: ChargeBack, unit: UnitOfWork, context: Context) -> MoneyFlow:
    topup = unit.get(command.topup_id, PaymentOrder)
    if topup.order_type != TransactionType.TOPUP or topup.payee_wallet_id is None:
        raise ValidationFailed("only a top-up can be charged back")
    if topup.status != OrderStatus.SUCCEEDED:  # its own news has not come yet: try again later
        raise InvalidState(f"the top-up is {topup.status}, not succeeded")
    if command.money.currency != topup.currency or command.money.amount > topup.amount:
        raise ValidationFailed(f"a chargeback of {command.money.amount} {command.money.currency} "
                               f"is not of a top-up of {topup.amount} {topup.currency}")
    wallet = unit.get(topup.payee_wallet_id, Wallet)
    # A dispute of the top-up, opened and decided by the card's bank: the customer's list
    # shows it, linked to the top-up, with what the wallet gave back.
    dispute = Dispute.open(kind=DisputeKind.CHARGEBACK, payment_id=topup.id,
                           order_id=command.order_id, customer_wallet_id=wallet.id,
                           merchant_wallet_id=None, opened_by=wallet.owner_id,
                           amount=command.money.amount, currency=command.money.currency,
                           covered=max(0, min(command.money.amount, wallet.available)),
                           reason="the card's bank charged the top-up back")
    dispute.decide(Outcome.CUSTOMER, by=None)
    unit.add(dispute)
    return MoneyFlow(TransactionType.TOPUP, command.money, payer=wallet,
                     payee=SystemAccount.PSP_CLEARING,
                     reference=f"chargeback of top-up {topup.id}", limits=False,
                     charges_fee=False, shortfall=SystemAccount.RECEIVABLES,
                     psp_fee=Money(command.psp_fee, command.money.currency) if command.psp_fee else None)


# A webhook's task is new but for a repeated delivery: asked about with the batch's probes.
@in_batch(ReceiveWebhook, probes=lambda command: (PspTask.id_for_webhook(command.event_id),))
def receive_webhook(command: ReceiveWebhook, unit: UnitOfWork, context: Context) -> PspTask | None:
    task_id = PspTask.id_for_webhook(command.event_id)
    if unit.find(task_id, PspTask) is not None:
        return None  # delivered before: its task exists
    task = PspTask(id=task_id, kind=TaskKind.WEBHOOK, operation=command.event_type,
                   order_id=command.order_id, payload=command.data,
                   due_at=context.clock().isoformat())
    if command.settled is not None:
        task.complete(command.settled)
    unit.add(task)
    return task


@in_batch(FailAttempt)
def fail_attempt(command: FailAttempt, unit: UnitOfWork, context: Context) -> PspTask:
    task = unit.get(command.task_id, PspTask)
    if not task.done:
        task.attempt_failed(command.error, retry_at=command.retry_at)
    return task


@in_batch(CompleteTask)
def complete_task(command: CompleteTask, unit: UnitOfWork, context: Context) -> PspTask:
    task = unit.get(command.task_id, PspTask)
    task.complete(command.outcome)
    return task


@in_batch(RetryDeadLetter)
def retry_dead_letter(command: RetryDeadLetter, unit: UnitOfWork, context: Context) -> PspTask:
    task = unit.get(command.task_id, PspTask)
    task.requeue(by=command.staff_id, at=context.clock().isoformat())
    return task


def _finish(unit: UnitOfWork, order: PaymentOrder, task: PspTask | None, outcome: str) -> None:
    """The task that brought the news is done, and so is the order's call, if it waits."""
    if task is not None:
        task.complete(outcome)
    call = unit.find(PspTask.id_for_call(order.id), PspTask)
    if call is not None and call is not task:
        call.complete(outcome)
