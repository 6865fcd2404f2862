"""Cash-ins: a customer hands an agent cash, and the agent sends as much from its float to the customer."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from gopay.aggregates.errors import Forbidden, NotFound, ValidationFailed
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Context
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, money_flow
from gopay.commands.recipients import agent_wallet, wallet_of
from gopay.group_commit import UnitOfWork


@dataclass(frozen=True, kw_only=True)
class CashIn(MoneyCommand):
    """The agent (caller) credits `money` from its float to the wallet `customer` names
    (an e-mail, a phone or a wallet id)."""

    operation = "cash-in"
    customer: str
    money: Money


def signed_in_agent(unit: UnitOfWork, caller_id: UUID) -> Wallet:
    """The caller's float, if the caller is an agent."""
    try:
        return agent_wallet(unit, caller_id)
    except NotFound:
        raise Forbidden("only agents handle cash") from None


def at_agent(agent_id: UUID) -> str:
    """The reference both sides' lines carry: the agent, by the id customers know it by."""
    return f"agent {agent_id}"


@money_flow(CashIn)
def cash_in(command: CashIn, unit: UnitOfWork, context: Context) -> MoneyFlow:
    agent = signed_in_agent(unit, command.caller_id)
    customer = wallet_of(unit, command.customer)
    if customer.id == agent.id:
        raise ValidationFailed("an agent cannot cash in to its own wallet")
    # The agent's float is its stock in trade, not spending: no tier limit applies to it (the
    # type is not a spending one); the customer's wallet may not pass its balance limit.
    return MoneyFlow(TransactionType.CASH_IN, command.money, payer=agent, payee=customer,
                     reference=at_agent(command.caller_id), commission_to=agent)
