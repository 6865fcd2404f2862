"""Mobile recharges: airtime for a phone number, bought from its operator with wallet money.

A recharge is a deferred money flow: the money (and its fee) is held at once, with a task to
ask the operators' gateway (`gopay.operators.port`) under the order's nonce; the operator's
success captures the hold and credits the operator's payable account, its failure releases
the hold, also when GoPay learns it only later (a retry, a status query, a webhook: whichever
comes first settles the order, `gopay.commands.psp_outcomes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from gopay.aggregates.errors import CurrencyMismatch, NotFound, ValidationFailed
from gopay.aggregates.instruments import PHONE
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.mobile_operator import MobileOperator
from gopay.aggregates.money import Money
from gopay.aggregates.psp_task import PspTask, TaskKind
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Context
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, money_flow
from gopay.group_commit import UnitOfWork
from gopay.psp.port import OperationKind


@dataclass(frozen=True, kw_only=True)
class RequestRecharge(MoneyCommand):
    """Top `phone_number` (E.164) up with `money` of airtime on an operator's network."""

    operation = "recharge"
    screened = True
    wallet_id: UUID
    operator_id: UUID
    phone_number: str
    money: Money

    def __post_init__(self) -> None:
        if not PHONE.fullmatch(self.phone_number):
            raise ValidationFailed("phone_number is an E.164 number such as +12025550123")


@money_flow(RequestRecharge)
def request_recharge(command: RequestRecharge, unit: UnitOfWork, context: Context) -> MoneyFlow:
    payer = unit.get(command.wallet_id, Wallet)
    operator = unit.find(command.operator_id, MobileOperator)
    if operator is None:
        raise NotFound("operator not found")
    # Checked now: the operator's account is credited only when it answers, too late to refuse.
    if command.money.currency != operator.currency:
        raise CurrencyMismatch(f"this operator sells airtime in {operator.currency}")
    payable = unit.get(operator.wallet_id, Wallet)
    unit.add(PspTask(id=PspTask.id_for_call(command.order_id), kind=TaskKind.CALL,
                     operation=OperationKind.RECHARGE, order_id=command.order_id,
                     payload={"phone_number": command.phone_number, "operator": operator.name,
                              "operator_id": str(operator.id)},
                     due_at=(context.clock() + context.psp_call_grace).isoformat()))
    return MoneyFlow(TransactionType.RECHARGE, command.money, payer=payer, payee=payable,
                     reference=command.phone_number, deferred=True, payee_limits=False)
