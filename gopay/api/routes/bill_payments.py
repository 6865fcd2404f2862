"""Bill payments: a customer pays a biller, with the reference the biller gave them."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import Money
from gopay.api.bill_schemas import BillPaymentCreate, BillPaymentPublic
from gopay.api.deps import Customer, IdempotencyKey, SecondFactor, SystemDep, fingerprint
from gopay.api.problems import Problem
from gopay.api.routes.transfers import SCREENING_RESPONSES
from gopay.api.step_up import confirm_step_up
from gopay.commands.bill_payments import PayBill
from gopay.commands.screening import is_held_for_review

router = APIRouter(prefix="/v1/bill-payments", tags=["bills"])


@router.post("", status_code=201, response_model=BillPaymentPublic,
             responses={202: {**SCREENING_RESPONSES[202], "model": BillPaymentPublic},
                        422: SCREENING_RESPONSES[422]})
def pay_bill(body: BillPaymentCreate, caller: Customer, system: SystemDep, response: Response,
             idempotency_key: IdempotencyKey = None,
             otp: SecondFactor = None) -> BillPaymentPublic:
    """Pay a biller from the wallet; both histories carry `customer_reference`.

    The same rules as a transfer: the tier's limits, the frozen rule, the fee schedule's
    `bill_payment` fee, and from the step-up amount up a fresh 2FA code in `GoPay-OTP`.
    """
    assert caller.wallet_id is not None, "customers have a wallet"
    confirm_step_up(system, caller, body.amount, PayBill.operation, idempotency_key, otp)
    order = system.commands.run(PayBill(
        caller_id=caller.user_id, wallet_id=caller.wallet_id, biller_id=body.biller_id,
        customer_reference=body.customer_reference,
        money=Money.positive(body.amount, body.currency),
        idempotency_key=idempotency_key, fingerprint=fingerprint(body))).value
    held = is_held_for_review(order)
    if held:
        response.status_code = 202
    return BillPaymentPublic(id=order.id, status="held_for_review" if held else order.status,
                             biller_id=body.biller_id,
                             customer_reference=order.note, amount=order.amount,
                             currency=order.currency, wallet_id=caller.wallet_id,
                             created_at=order.created_on)


@router.get("/{payment_id}", response_model=BillPaymentPublic)
def get_bill_payment(payment_id: str, caller: Customer, system: SystemDep) -> BillPaymentPublic:
    """One of your bill payments; anyone else's does not exist."""
    system.catch_up_reads()
    try:
        row = system.read_side.wallets.order(UUID(payment_id))
    except ValueError:
        row = None
    if (row is None or row["type"] != TransactionType.BILL_PAYMENT
            or row["payer_wallet_id"] != caller.wallet_id):
        raise Problem(404, "bill payment not found")
    biller = system.read_side.providers.biller_of_wallet(row["payee_wallet_id"])
    if biller is None:
        raise Problem(404, "bill payment not found")
    return BillPaymentPublic(id=row["id"], status=row["status"], biller_id=biller["id"],
                             customer_reference=row["note"], amount=row["amount"],
                             currency=row["currency"], wallet_id=row["payer_wallet_id"],
                             created_at=row["created_at"])
