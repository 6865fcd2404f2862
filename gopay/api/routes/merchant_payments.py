"""What a merchant received, and refunds of it: by the merchant, or its server's API key."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query

from gopay.api.deps import IdCursor, IdempotencyKey, SystemDep, fingerprint, id_cursor
from gopay.api.merchant_auth import MerchantOrKey
from gopay.api.merchant_schemas import MerchantPaymentPublic, RefundCreate, RefundPublic
from gopay.api.pagination import page_of
from gopay.api.problems import Problem
from gopay.api.schemas import Page
from gopay.commands.refunds import RefundPayment

router = APIRouter(tags=["merchants"])


def merchant_payment_public(row: dict[str, Any]) -> MerchantPaymentPublic:
    amount, refunded = row["amount"], row["refunded"]
    status: Literal["succeeded", "partially_refunded", "refunded"] = (
        "refunded" if refunded >= amount else "partially_refunded" if refunded else "succeeded")
    return MerchantPaymentPublic(
        id=row["id"], status=status, amount=amount, currency=row["currency"], fee=row["fee"],
        net=amount - row["fee"], refunded=refunded, disputed=row["disputed"],
        refundable=amount - refunded - row["disputed"],
        reference=row["reference"], payer_wallet_id=row["payer_wallet_id"],
        created_at=row["created_at"])


@router.get("/v1/merchant/payments", response_model=Page[MerchantPaymentPublic])
def list_payments(caller: MerchantOrKey, system: SystemDep,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50,
                  cursor: IdCursor = None) -> Page[MerchantPaymentPublic]:
    """Payments you received, newest first, as soon as they are made."""
    system.catch_up_reads()
    after = id_cursor(cursor)
    rows = system.read_side.merchant.payments(caller.wallet_id, limit=limit + 1,
                                              after=UUID(after) if after else None)
    return page_of(Page[MerchantPaymentPublic], rows, limit, merchant_payment_public,
                   lambda row: row["id"])


@router.get("/v1/merchant/payments/{payment_id}", response_model=MerchantPaymentPublic)
def get_payment(payment_id: str, caller: MerchantOrKey, system: SystemDep) -> MerchantPaymentPublic:
    """One payment you received; anyone else's does not exist."""
    system.catch_up_reads()
    try:
        row = system.read_side.merchant.payment(UUID(payment_id))
    except ValueError:
        row = None
    if row is None or row["merchant_wallet_id"] != caller.wallet_id:
        raise Problem(404, "payment not found")
    return merchant_payment_public(row)


@router.post("/v1/payments/{payment_id}/refunds", status_code=201, response_model=RefundPublic)
def refund(payment_id: str, body: RefundCreate, caller: MerchantOrKey, system: SystemDep,
           idempotency_key: IdempotencyKey = None) -> RefundPublic:
    """Give a payment you received back to the payer's wallet: all that is left of it, or
    `amount`. Refunds together never pass what was paid (409 `invalid_state` beyond it).
    A payment made with money from a card top-up is refunded to the wallet, not the card.
    """
    try:
        payment = UUID(payment_id)
    except ValueError:
        raise Problem(404, "payment not found") from None
    # The same key for another payment's refund is another request, not a repeat.
    request = hashlib.sha256(f"{payment}/{fingerprint(body)}".encode()).hexdigest()
    order = system.commands.run(RefundPayment(
        caller_id=caller.user_id, merchant_wallet_id=caller.wallet_id, payment_id=payment,
        amount=body.amount, idempotency_key=idempotency_key, fingerprint=request)).value
    assert order.payee_wallet_id is not None, "a refund goes back to a wallet"
    return RefundPublic(id=order.id, payment_id=payment, status=order.status, amount=order.amount,
                        currency=order.currency, payer_wallet_id=order.payee_wallet_id,
                        created_at=order.created_on)
