"""Mobile recharges: airtime for a phone number, paid from the wallet, bought from its operator."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response

from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus
from gopay.api.deps import Customer, IdempotencyKey, SecondFactor, SystemDep, fingerprint
from gopay.api.problems import Problem
from gopay.api.recharge_schemas import RechargeCreate, RechargePublic
from gopay.api.step_up import confirm_step_up
from gopay.commands.recharges import RequestRecharge

router = APIRouter(prefix="/v1/recharges", tags=["mobile recharge"])


def recharge_public(order: dict[str, Any], operator_id: UUID) -> RechargePublic:
    return RechargePublic(id=order["id"], status=order["status"], phone_number=order["note"],
                          operator_id=operator_id, amount=order["amount"],
                          currency=order["currency"], operator_reference=order["psp_reference"],
                          failure_reason=order["failure_reason"], created_at=order["created_at"])


@router.post("", status_code=201, response_model=RechargePublic,
             responses={202: {"description": "Accepted: the operator has not answered yet",
                              "model": RechargePublic}})
def recharge(body: RechargeCreate, caller: Customer, system: SystemDep, response: Response,
             idempotency_key: IdempotencyKey = None,
             otp: SecondFactor = None) -> RechargePublic:
    """Top a phone number up with airtime; the money is held at once.

    201 with `succeeded` (the money is paid to the operator) or `failed` (it is given back)
    when the operator answered; 202 `pending` when it has not yet: GoPay finds out by asking
    it again, never recharges twice, and gives the money back if it failed. From the step-up
    amount up, a user with 2FA on sends a fresh code in `GoPay-OTP`.
    """
    assert caller.wallet_id is not None, "customers have a wallet"
    confirm_step_up(system, caller, body.amount, RequestRecharge.operation, idempotency_key, otp)
    order = system.commands.run(RequestRecharge(
        caller_id=caller.user_id, wallet_id=caller.wallet_id, operator_id=body.operator_id,
        phone_number=body.phone_number, money=Money.positive(body.amount, body.currency),
        idempotency_key=idempotency_key, fingerprint=fingerprint(body))).value
    if order.status == OrderStatus.PENDING:
        order = system.psp_process.call_at_once(order)
    if order.status == OrderStatus.PENDING:
        response.status_code = 202
    return recharge_public({"id": order.id, "status": order.status, "note": order.note,
                            "amount": order.amount, "currency": order.currency,
                            "psp_reference": order.psp_reference,
                            "failure_reason": order.failure_reason,
                            "created_at": order.created_on}, body.operator_id)


@router.get("/{recharge_id}", response_model=RechargePublic)
def get_recharge(recharge_id: str, caller: Customer, system: SystemDep) -> RechargePublic:
    """One of your recharges; anyone else's does not exist."""
    system.catch_up_reads()
    try:
        row = system.read_side.wallets.order(UUID(recharge_id))
    except ValueError:
        row = None
    if (row is None or row["type"] != TransactionType.RECHARGE
            or row["payer_wallet_id"] != caller.wallet_id):
        raise Problem(404, "recharge not found")
    operator = system.read_side.providers.operator_of_wallet(row["payee_wallet_id"])
    if operator is None:
        raise Problem(404, "recharge not found")
    return recharge_public(row, operator["id"])
