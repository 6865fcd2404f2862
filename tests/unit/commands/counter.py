"""The agent's counter in the stories: cash-ins, cash-outs and their codes, on the in-memory GoPay."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gopay.aggregates.cash_out import CashOut
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import PaymentOrder
from gopay.aggregates.user import User
from gopay.commands.cash_ins import CashIn
from gopay.commands.cash_outs import CodeAnswer, ConfirmCashOut, RequestCashOut, code_of
from tests.unit.commands.in_memory import InMemoryGoPay, wallet_id

CODE_LIFETIME = timedelta(minutes=15)


def cash_in(gopay: InMemoryGoPay, agent: User, customer: str, amount: int, currency: str = "USD",
            **fields: Any) -> PaymentOrder:
    return gopay.run(CashIn(caller_id=agent.id, customer=customer, money=Money(amount, currency),
                            **fields))


def ask_cash_out(gopay: InMemoryGoPay, customer: User, agent: User, amount: int,
                 currency: str = "USD", **fields: Any) -> tuple[PaymentOrder, str]:
    """The held order, and the code the customer is shown."""
    order = gopay.run(RequestCashOut(caller_id=customer.id, wallet_id=wallet_id(customer),
                                     agent_id=agent.id, money=Money(amount, currency),
                                     **{"valid_for": CODE_LIFETIME, **fields}))
    return order, code_of(gopay.context, cash_out_of(gopay, order))


def confirm(gopay: InMemoryGoPay, agent: User, code: str, **fields: Any) -> CodeAnswer:
    return gopay.run(ConfirmCashOut(agent_id=agent.id, code=code, **fields))


def cash_out_of(gopay: InMemoryGoPay, order: PaymentOrder) -> CashOut:
    return gopay.app.get(CashOut.id_for(order.id), CashOut)


def wrong(code: str) -> str:
    """The same slot, with other secret digits."""
    return code[:4] + f"{(int(code[4:]) + 1) % 10**6:06d}"
