"""Fee quotes: what the fee schedule would charge for a payment, and who would pay it, before paying."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gopay.aggregates.fees import FeePayer
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import MAX_AMOUNT, Money
from gopay.api.deps import Caller, SystemDep
from gopay.api.merchant_schemas import FeeQuote
from gopay.api.schemas import Currency

router = APIRouter(tags=["fees"])


@router.get("/v1/fees", response_model=FeeQuote)
async def quote_fee(caller: Caller, system: SystemDep, type: Annotated[TransactionType, Query()],
                    amount: Annotated[int, Query(gt=0, le=MAX_AMOUNT, description="Minor units")],
                    currency: Annotated[Currency, Query()] = "USD") -> FeeQuote:
    """The fee GoPay's schedule (`GOPAY_FEES`) charges a payment of `type` and `amount`:
    rounded half up to the minor unit, within the rule's minimum and maximum, never more
    than the amount; paid on top by the payer or out of what the payee receives."""
    fee = system.commands.context.fees.fee_for(type, Money(amount, currency))
    charged = fee.money.amount if fee else 0
    paid_by = fee.paid_by if fee else None
    return FeeQuote(type=type, amount=amount, currency=currency, fee=charged, paid_by=paid_by,
                    payer_pays=amount + (charged if paid_by == FeePayer.PAYER else 0),
                    payee_receives=amount - (charged if paid_by == FeePayer.PAYEE else 0))
