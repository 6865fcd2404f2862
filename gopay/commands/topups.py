"""Top-ups: money into a wallet from a saved card, bank account or digital wallet, via the PSP.

A top-up is a deferred money flow: the order, its planned entry and a task to charge the PSP
are saved in one commit; the wallet is credited once the PSP's answer, a status query or its
webhook (whichever comes first) says the charge succeeded (`gopay.commands.psp_outcomes`).
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

# Where money can come from.
TOP_UP_FROM = ("card", "bank_account", "digital_wallet")


@dataclass(frozen=True, kw_only=True)
class RequestTopUp(MoneyCommand):
    """Charge `money` to the caller's saved payment method, for their wallet."""

    operation = "topup"
    wallet_id: UUID
    payment_method_id: UUID
    money: Money


@money_flow(RequestTopUp)
def request_top_up(command: RequestTopUp, unit: UnitOfWork, context: Context) -> MoneyFlow:
    wallet = unit.get(command.wallet_id, Wallet)
    method = saved_method(unit, command.caller_id, command.payment_method_id, TOP_UP_FROM,
                          "a top-up comes from a card, a bank account or a digital wallet")
    unit.add(psp_call(context, command.order_id, OperationKind.CHARGE, method))
    return MoneyFlow(TransactionType.TOPUP, command.money, payer=SystemAccount.PSP_CLEARING,
                     payee=wallet, reference=f"top-up from {shown(method)}", deferred=True)
