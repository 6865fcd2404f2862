"""What agents do at the counter: cash-ins from their float, and cash-outs paid against a code."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool

from gopay.aggregates.cash_out import CODE_LENGTH
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import PaymentOrder
from gopay.api.agent_schemas import CashInCreate, CashInPublic, CashOutPublic
from gopay.api.deps import Agent, IdempotencyKey, SecondFactor, SystemDep, fingerprint
from gopay.api.routes.cash_outs import cash_out_public
from gopay.api.step_up import confirm_step_up
from gopay.commands.cash_ins import CashIn
from gopay.commands.cash_outs import ConfirmCashOut

router = APIRouter(prefix="/v1/agent", tags=["agents"])

Code = Annotated[str, Path(pattern=rf"^[0-9]{{{CODE_LENGTH}}}$",
                           description="The code the customer shows")]


def cash_in_public(order: PaymentOrder) -> CashInPublic:
    assert order.payer_wallet_id, "a cash-in is paid from the agent's wallet"
    assert order.payee_wallet_id, "a cash-in is paid to a wallet"
    return CashInPublic(id=order.id, status=order.status, amount=order.amount,
                        currency=order.currency, agent_wallet_id=order.payer_wallet_id,
                        customer_wallet_id=order.payee_wallet_id, created_at=order.created_on)


@router.post("/cash-ins", status_code=201, response_model=CashInPublic)
async def create_cash_in(body: CashInCreate, caller: Agent, system: SystemDep,
                         idempotency_key: IdempotencyKey = None,
                         otp: SecondFactor = None) -> CashInPublic:
    """Credit a customer (e-mail, phone or wallet id) from the agent's float, for cash handed
    over; the agent earns the fee schedule's commission in the same entry."""
    await run_in_threadpool(confirm_step_up, system, caller, body.amount, CashIn.operation,
                            idempotency_key, otp)
    outcome = await system.commands.run_async(CashIn(
        caller_id=caller.user_id, customer=body.customer,
        money=Money.positive(body.amount, body.currency), idempotency_key=idempotency_key,
        fingerprint=fingerprint(body)))
    return cash_in_public(outcome.value)


@router.post("/cash-outs/{code}/confirm", response_model=CashOutPublic)
async def confirm_cash_out(code: Code, caller: Agent, system: SystemDep,
                           idempotency_key: IdempotencyKey = None) -> CashOutPublic:
    """Pay out the cash-out whose code the customer shows: the held money becomes the agent's,
    with its commission. A wrong code counts against that cash-out (422 `wrong_code`, with
    `attempts_left`); the last wrong one cancels it and gives the customer's money back."""
    outcome = await system.commands.run_async(ConfirmCashOut(
        agent_id=caller.user_id, code=code, idempotency_key=idempotency_key))
    return cash_out_public(outcome.value.cash_out)
