"""Manual ledger entries: staff correct a wallet against GoPay's adjustments account."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from gopay.aggregates.errors import ValidationFailed
from gopay.aggregates.ledger import SystemAccount, TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Context
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, money_flow
from gopay.group_commit import UnitOfWork


class Direction(StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"


@dataclass(frozen=True, kw_only=True)
class Adjust(MoneyCommand):
    """Credit or debit `wallet_id` by `money`, for `reason`, signed by the staff member (caller)."""

    operation = "adjustment"
    wallet_id: UUID
    direction: Direction
    money: Money
    reason: str

    def __post_init__(self) -> None:
        if not self.reason.strip():  # refused before anything else, a repeated key included
            raise ValidationFailed("an adjustment needs a reason")


@money_flow(Adjust)
def adjust(command: Adjust, unit: UnitOfWork, context: Context) -> MoneyFlow:
    wallet = unit.get(command.wallet_id, Wallet)
    adjustments = SystemAccount.ADJUSTMENTS
    payer, payee = ((adjustments, wallet) if command.direction == Direction.CREDIT
                    else (wallet, adjustments))
    # Corrections are not spending: no tier limit applies to them.
    return MoneyFlow(TransactionType.ADJUSTMENT, command.money, payer=payer, payee=payee,
                     reference=command.reason, limits=False)
