"""Cash-outs, as the customer asks for them: money held for an agent, paid in cash against a one-time code."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from fastapi import APIRouter

from gopay.aggregates.cash_out import CashOut
from gopay.aggregates.errors import NotFound
from gopay.aggregates.money import Money
from gopay.api.agent_schemas import CashOutCreate, CashOutCreated, CashOutPublic
from gopay.api.deps import Customer, IdempotencyKey, Person, SecondFactor, SystemDep, fingerprint
from gopay.api.problems import Problem
from gopay.api.step_up import confirm_step_up
from gopay.commands.cash_outs import CancelCashOut, RequestCashOut, code_of
from gopay.security.tokens import AccessClaims
from gopay.system import System

router = APIRouter(prefix="/v1/cash-outs", tags=["agents"])


def cash_out_public(cash_out: CashOut) -> CashOutPublic:
    return CashOutPublic(id=cash_out.order_id, status=cash_out.status, amount=cash_out.amount,
                         currency=cash_out.currency, agent_id=cash_out.agent_id,
                         agent_wallet_id=cash_out.agent_wallet_id,
                         customer_wallet_id=cash_out.customer_wallet_id,
                         expires_at=datetime.fromisoformat(cash_out.expires_at),
                         attempts_left=cash_out.attempts_left,
                         failure_reason=cash_out.reason, created_at=cash_out.created_on)


def _row_public(row: dict[str, Any]) -> CashOutPublic:
    return CashOutPublic(id=row["id"], status=row["status"], amount=row["amount"],
                         currency=row["currency"], agent_id=row["agent_id"],
                         agent_wallet_id=row["agent_wallet_id"],
                         customer_wallet_id=row["customer_wallet_id"], expires_at=row["expires_at"],
                         attempts_left=max(0, row["attempts_allowed"] - row["wrong_codes"]),
                         failure_reason=row["reason"], created_at=row["created_at"])


@router.post("", status_code=201, response_model=CashOutCreated)
def create_cash_out(body: CashOutCreate, caller: Person, system: SystemDep,
                    idempotency_key: IdempotencyKey = None,
                    otp: SecondFactor = None) -> CashOutCreated:
    """Hold money for cash at an agent; the answer's one-time code, shown to that agent,
    lets it pay the cash out. Unused, the code expires and the money is released by itself.
    A repeat with the same Idempotency-Key answers the same code."""
    assert caller.wallet_id is not None, "customers have a wallet"
    confirm_step_up(system, caller, body.amount, RequestCashOut.operation, idempotency_key, otp)
    settings = system.settings
    order = system.commands.run(RequestCashOut(
        caller_id=caller.user_id, wallet_id=caller.wallet_id, agent_id=body.agent_id,
        money=Money.positive(body.amount, body.currency),
        valid_for=timedelta(seconds=settings.cash_out_code_seconds),
        attempts=settings.cash_out_code_attempts,
        idempotency_key=idempotency_key, fingerprint=fingerprint(body))).value
    cash_out = system.app.get(CashOut.id_for(order.id), CashOut)
    return CashOutCreated(**cash_out_public(cash_out).model_dump(),
                          code=code_of(system.commands.context, cash_out))


@router.get("/{cash_out_id}", response_model=CashOutPublic)
def get_cash_out(cash_out_id: str, caller: Customer, system: SystemDep) -> CashOutPublic:
    """A cash-out, for its customer and its agent; anyone else is told it does not exist."""
    return _row_public(_party_row(system, caller, cash_out_id))


@router.post("/{cash_out_id}/cancel", response_model=CashOutPublic)
def cancel_cash_out(cash_out_id: str, caller: Customer, system: SystemDep) -> CashOutPublic:
    """Call off a pending cash-out: its code stops working and the money is released. Only its
    customer may; to anyone else it does not exist."""
    assert caller.wallet_id is not None, "customers have a wallet"
    try:
        command = CancelCashOut(customer_wallet_id=caller.wallet_id, order_id=UUID(cash_out_id))
    except ValueError:
        raise NotFound("cash-out not found") from None
    return cash_out_public(system.commands.run(command).value)


def _party_row(system: System, caller: AccessClaims, cash_out_id: str) -> dict[str, Any]:
    system.catch_up_reads()
    try:
        row = system.read_side.cash_outs.cash_out(UUID(cash_out_id))
    except ValueError:
        row = None
    if row is None or caller.wallet_id not in (row["customer_wallet_id"], row["agent_wallet_id"]):
        raise Problem(404, "cash-out not found")
    return row
