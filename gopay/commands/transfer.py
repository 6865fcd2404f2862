"""Person-to-person transfers: from the sender's wallet to anyone's, all of it or nothing."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from gopay.aggregates.errors import ValidationFailed
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Context
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, money_flow
from gopay.commands.recipients import wallet_of
from gopay.group_commit import UnitOfWork


@dataclass(frozen=True, kw_only=True)
class Transfer(MoneyCommand):
    """Send `money` to the wallet `recipient` names (an e-mail, a phone or a wallet id)."""

    operation = "transfer"
    screened = True
    sender_wallet_id: UUID
    recipient: str
    money: Money
    note: str = ""


@money_flow(Transfer)
def transfer(command: Transfer, unit: UnitOfWork, context: Context) -> MoneyFlow:
    payer = unit.get(command.sender_wallet_id, Wallet)
    payee = wallet_of(unit, command.recipient)
    if payee.id == payer.id:
        raise ValidationFailed("you cannot send money to yourself")
    return MoneyFlow(TransactionType.TRANSFER, command.money, payer=payer, payee=payee,
                     reference=command.note)
