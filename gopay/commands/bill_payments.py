"""Bill payments: from a customer's wallet to a biller's payable account, with the bill's reference.

A bill payment is money paid now, like a transfer (the payer's limits, the frozen rule, the
fee schedule's `bill_payment` rule, idempotency); the payee is the account GoPay keeps for the
biller until it settles it, which no tier's balance limit caps. Both histories carry the
customer's reference at the biller (an account or invoice number), so the biller can tell
whose bill was paid.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from gopay.aggregates.biller import Biller
from gopay.aggregates.errors import CurrencyMismatch, NotFound, ValidationFailed
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Context
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, money_flow
from gopay.group_commit import UnitOfWork


@dataclass(frozen=True, kw_only=True)
class PayBill(MoneyCommand):
    """Pay `money` from the caller's wallet to a biller, for the bill `customer_reference` names."""

    operation = "bill_payment"
    screened = True
    wallet_id: UUID
    biller_id: UUID
    customer_reference: str
    money: Money

    def __post_init__(self) -> None:
        if not self.customer_reference.strip():
            raise ValidationFailed("a bill payment needs the customer reference the biller gave")


@money_flow(PayBill)
def pay_bill(command: PayBill, unit: UnitOfWork, context: Context) -> MoneyFlow:
    payer = unit.get(command.wallet_id, Wallet)
    biller = unit.find(command.biller_id, Biller)
    if biller is None:
        raise NotFound("biller not found")
    if command.money.currency != biller.currency:
        raise CurrencyMismatch(f"this biller is paid in {biller.currency}")
    payable = unit.get(biller.wallet_id, Wallet)
    return MoneyFlow(TransactionType.BILL_PAYMENT, command.money, payer=payer, payee=payable,
                     reference=command.customer_reference.strip(), payee_limits=False)
