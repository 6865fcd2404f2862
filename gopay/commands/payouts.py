"""Payouts: money out of a wallet to a saved bank account or card, via the PSP.

A payout is a deferred money flow: the money (and its fee) is held at once, with a task to
ask the PSP to pay; the PSP's success captures the hold and books the entry, its failure
releases the hold (`gopay.commands.psp_outcomes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from gopay.aggregates.ledger import SystemAccount, TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Context
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, money_flow
from gopay.commands.psp_outcomes import psp_call, saved_method, shown
from gopay.group_commit import UnitOfWork
from gopay.psp.port import OperationKind

# Where money can go.
PAY_OUT_TO = ("bank_account", "card")


@dataclass(frozen=True, kw_only=True)
class RequestPayout(MoneyCommand):
    """Pay `money` out of the caller's wallet to their saved bank account or card."""

    operation = "payout"
    screened = True
    wallet_id: UUID
    payment_method_id: UUID
    money: Money


@money_flow(RequestPayout)
def request_payout(command: RequestPayout, unit: UnitOfWork, context: Context) -> MoneyFlow:
    wallet = unit.get(command.wallet_id, Wallet)
    method = saved_method(unit, command.caller_id, command.payment_method_id, PAY_OUT_TO,
                          "a payout goes to a bank account or a card")
    unit.add(psp_call(context, command.order_id, OperationKind.PAYOUT, method))
    return MoneyFlow(TransactionType.PAYOUT, command.money, payer=wallet,
                     payee=SystemAccount.PAYOUT_CLEARING, reference=f"payout to {shown(method)}",
                     deferred=True)
