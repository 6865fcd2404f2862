"""Biller settlements: what GoPay holds for a biller, paid out to the biller's bank account.

A settlement is a payout from the biller's payable account: a deferred money flow whose money
is held at once with a task to ask the PSP to pay; the PSP's success captures the hold (the
money leaves through `payout_clearing`, the PSP's fee is GoPay's cost), its failure releases
it (`gopay.commands.psp_outcomes`). Bill payments arriving meanwhile stay available for the
next settlement.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from gopay.aggregates.biller import Biller
from gopay.aggregates.errors import InvalidState, NotFound
from gopay.aggregates.ledger import SystemAccount, TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.payment_method import PaymentMethod
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Context
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, money_flow
from gopay.commands.psp_outcomes import psp_call, shown
from gopay.group_commit import UnitOfWork
from gopay.psp.port import OperationKind


@dataclass(frozen=True, kw_only=True)
class SettleBiller(MoneyCommand):
    """Pay a biller `money` (by default all its payable account has available) to its bank
    account; the caller is the staff member who asked."""

    operation = "biller_settlement"
    biller_id: UUID
    money: Money | None = None


@money_flow(SettleBiller)
def settle_biller(command: SettleBiller, unit: UnitOfWork, context: Context) -> MoneyFlow:
    biller = unit.find(command.biller_id, Biller)
    if biller is None:
        raise NotFound("biller not found")
    method = unit.find(biller.bank_account_id, PaymentMethod) if biller.bank_account_id else None
    if method is None or method.removed:
        raise InvalidState("this biller has no bank account to be settled to")
    payable = unit.get(biller.wallet_id, Wallet)
    money = command.money or Money(payable.available, payable.currency)
    if money.amount <= 0:
        raise InvalidState("nothing is owed to this biller now")
    unit.add(psp_call(context, command.order_id, OperationKind.PAYOUT, method))
    # GoPay's own account paying out what it owes: no tier's limits apply.
    return MoneyFlow(TransactionType.SETTLEMENT, money, payer=payable,
                     payee=SystemAccount.PAYOUT_CLEARING,
                     reference=f"settlement to {shown(method)}", limits=False, deferred=True)
