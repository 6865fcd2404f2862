"""Automated merchant payouts: the merchant's payout schedule, and the payout each period makes.

A scheduled payout is a payout (`gopay.commands.payouts`) the schedule asks for instead of
the merchant: what the merchant's wallet has available is held at once with a task to ask
the PSP to pay it to the schedule's bank account; the PSP's success captures it, its failure
releases it (`gopay.commands.psp_outcomes`). Its order id is derived from the merchant and
the period, so the same period is paid out at most once, by however many jobs in however
many processes, and a job killed half-way leaves either the whole payout or none of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from gopay.aggregates.errors import CurrencyMismatch, InvalidState, NotFound
from gopay.aggregates.fees import FeePayer
from gopay.aggregates.ledger import SystemAccount, TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.payout_schedule import PayoutSchedule
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Command, Context, in_batch
from gopay.commands.merchants import merchant
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, money_flow
from gopay.commands.psp_outcomes import psp_call, saved_method, shown
from gopay.group_commit import UnitOfWork
from gopay.psp.port import OperationKind


@dataclass(frozen=True, kw_only=True)
class SetPayoutSchedule(Command[PayoutSchedule]):
    """The merchant's terms: how often, the least worth paying out, and to which bank account."""

    merchant_id: UUID
    frequency: str
    weekday: str | None
    minimum: int
    currency: str | None  # None: the wallet's
    payment_method_id: UUID


@dataclass(frozen=True, kw_only=True)
class StopPayoutSchedule(Command[PayoutSchedule]):
    merchant_id: UUID


@dataclass(frozen=True, kw_only=True)
class PayOutMerchant(MoneyCommand):
    """Pay out what the merchant has available, for `period` of its schedule (the caller is
    the merchant: the schedule is its standing instruction)."""

    operation = "scheduled_payout"
    period: str

    @classmethod
    def for_period(cls, merchant_id: UUID, period: str) -> PayOutMerchant:
        # The period is the key: one order per merchant and period, whoever runs the job.
        return cls(caller_id=merchant_id, period=period, idempotency_key=period,
                   fingerprint=period)


@in_batch(SetPayoutSchedule)
def set_payout_schedule(command: SetPayoutSchedule, unit: UnitOfWork,
                        context: Context) -> PayoutSchedule:
    owner = merchant(unit, command.merchant_id)
    assert owner.wallet_id is not None
    wallet = unit.get(owner.wallet_id, Wallet)
    minimum = Money(command.minimum, command.currency or wallet.currency)
    if minimum.currency != wallet.currency:
        raise CurrencyMismatch(f"the wallet holds {wallet.currency}, not {minimum.currency}")
    method = saved_method(unit, owner.id, command.payment_method_id, ("bank_account",),
                          "scheduled payouts go to a bank account")
    schedule = unit.find(PayoutSchedule.id_for(owner.id), PayoutSchedule)
    if schedule is None:
        schedule = PayoutSchedule(id=PayoutSchedule.id_for(owner.id), merchant_id=owner.id,
                                  wallet_id=wallet.id)
        unit.add(schedule)
    schedule.set(frequency=command.frequency, weekday=command.weekday, minimum=minimum,
                 payment_method_id=method.id, bank_account_shown=shown(method),
                 today=context.today(), by=owner.id)
    return schedule


@in_batch(StopPayoutSchedule)
def stop_payout_schedule(command: StopPayoutSchedule, unit: UnitOfWork,
                         context: Context) -> PayoutSchedule:
    schedule = unit.find(PayoutSchedule.id_for(command.merchant_id), PayoutSchedule)
    if schedule is None or not schedule.active:
        raise NotFound("no payout schedule is set")
    schedule.stop(by=command.merchant_id)
    return schedule


@money_flow(PayOutMerchant)
def pay_out_merchant(command: PayOutMerchant, unit: UnitOfWork, context: Context) -> MoneyFlow:
    schedule = unit.find(PayoutSchedule.id_for(command.caller_id), PayoutSchedule)
    if schedule is None or schedule.payment_method_id is None:
        raise NotFound("no payout schedule is set")
    wallet = unit.get(schedule.wallet_id, Wallet)
    if wallet.frozen:  # not a refusal to record: once unfrozen, the period is paid out
        raise InvalidState("a frozen merchant is not paid out")
    method = saved_method(unit, command.caller_id, schedule.payment_method_id, ("bank_account",),
                          "scheduled payouts go to a bank account")
    money = Money(payable(wallet, context), wallet.currency)
    schedule.start_payout(period=command.period, order_id=command.order_id, money=money,
                          today=context.today())
    unit.add(psp_call(context, command.order_id, OperationKind.PAYOUT, method))
    return MoneyFlow(TransactionType.PAYOUT, money, payer=wallet,
                     payee=SystemAccount.PAYOUT_CLEARING,
                     reference=f"scheduled payout {command.period} to {shown(method)}",
                     deferred=True)


def payable(wallet: Wallet, context: Context) -> int:
    """What a payout may take from `wallet` now: all it has available, less the fee it pays
    on top, within what its tier lets it send today."""
    available = wallet.available
    limits = context.limits[wallet.tier]
    amount = min(available, limits.per_payment, limits.per_day - wallet.spent_on(context.today()))
    if amount <= 0:
        return 0

    def with_fee(amount: int) -> int:
        fee = context.fees.fee_for(TransactionType.PAYOUT, Money(amount, wallet.currency))
        return amount + (fee.money.amount if fee and fee.paid_by == FeePayer.PAYER else 0)

    # A smaller amount never costs a larger fee: start from what is left after the whole
    # amount's fee, and take up what the smaller fee leaves over while it still fits.
    fitting = max(0, amount - (with_fee(amount) - amount))
    for _ in range(3):
        larger = min(amount, fitting + available - with_fee(fitting))
        if larger <= fitting or with_fee(larger) > available:
            break
        fitting = larger
    return fitting
