"""QR payments by people: scan a merchant's code, pay it from the wallet."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from gopay.aggregates.ledger import SystemAccount, TransactionType
from gopay.aggregates.payment_order import PaymentOrder
from gopay.aggregates.qr_code import QrTerms
from gopay.api.deps import Customer, IdempotencyKey, SecondFactor, SystemDep, fingerprint
from gopay.api.merchant_schemas import QrPaymentCreate, QrPaymentPublic
from gopay.api.problems import Problem
from gopay.api.step_up import confirm_step_up
from gopay.commands.qr_payments import PayQrCode
from gopay.security.qr_codes import read_qr_payload
from gopay.security.tokens import AccessClaims

router = APIRouter(prefix="/v1/qr-payments", tags=["QR payments"])


def qr_payment_public(order_id: UUID, status: str, amount: int, currency: str,
                      payer: UUID | None, payee: UUID | None, reference: str,
                      postings: Iterable[Mapping[str, Any]], created_at: datetime) -> QrPaymentPublic:
    assert payer is not None, "a QR payment is paid from a wallet"
    assert payee is not None, "a QR payment is paid to a wallet"
    fees = str(SystemAccount.FEES.account_id(currency))
    fee = sum(int(p["amount"]) for p in postings if str(p["account_id"]) == fees)
    return QrPaymentPublic(id=order_id, status=status, amount=amount, currency=currency,
                           merchant_wallet_id=payee, payer_wallet_id=payer, reference=reference,
                           fee=fee, created_at=created_at)


def qr_payment_answer(order: PaymentOrder) -> QrPaymentPublic:
    return qr_payment_public(order.id, order.status, order.amount, order.currency,
                             order.payer_wallet_id, order.payee_wallet_id, order.note,
                             [p.as_record() for p in order.postings], order.created_on)


@router.post("", status_code=201, response_model=QrPaymentPublic)
async def pay_qr_code(body: QrPaymentCreate, caller: Customer, system: SystemDep,
                      idempotency_key: IdempotencyKey = None,
                      otp: SecondFactor = None) -> QrPaymentPublic:
    """Pay a merchant's QR code from your wallet: its amount, or for an open-amount code,
    the `amount` you enter. An altered or expired code is refused (422 `qr_invalid`,
    `qr_expired`), and so is a fixed-amount code already paid (409 `invalid_state`).

    The fee schedule, limits, the frozen rule and, from the step-up amount up, a fresh 2FA
    code in `GoPay-OTP` apply as for transfers.
    """
    if caller.kind != "person":
        raise Problem(403, "only people pay QR codes")
    assert caller.wallet_id is not None, "customers have a wallet"
    terms = read_qr_payload(body.qr_payload, system.settings.qr_key)
    amount = terms.amount or body.amount or 0
    if amount >= system.settings.step_up_amount:
        await run_in_threadpool(confirm_step_up, system, caller, amount, PayQrCode.operation,
                                idempotency_key, otp)
    outcome = await system.commands.run_async(
        qr_payment_command(caller, body, terms, idempotency_key))
    return qr_payment_answer(outcome.value)


def qr_payment_command(caller: AccessClaims, body: QrPaymentCreate, terms: QrTerms,
                       idempotency_key: str | None) -> PayQrCode:
    """The command behind a QR payment request (the route's and the fast lane's)."""
    assert caller.wallet_id is not None, "customers have a wallet"
    return PayQrCode(caller_id=caller.user_id, payer_wallet_id=caller.wallet_id, terms=terms,
                     amount=body.amount, idempotency_key=idempotency_key,
                     fingerprint=fingerprint(body))


@router.get("/{payment_id}", response_model=QrPaymentPublic)
def get_qr_payment(payment_id: str, caller: Customer, system: SystemDep) -> QrPaymentPublic:
    """A QR payment, for its payer or the merchant paid; anyone else is told it does not exist."""
    system.catch_up_reads()
    try:
        row = system.read_side.wallets.order(UUID(payment_id))
    except ValueError:
        row = None
    parties = (row["payer_wallet_id"], row["payee_wallet_id"]) if row else ()
    if row is None or row["type"] != TransactionType.QR_PAYMENT or caller.wallet_id not in parties:
        raise Problem(404, "QR payment not found")
    postings = row["postings"] if isinstance(row["postings"], list) else json.loads(row["postings"] or "[]")
    return qr_payment_public(row["id"], row["status"], row["amount"], row["currency"],
                             row["payer_wallet_id"], row["payee_wallet_id"], row["note"],
                             postings, row["created_at"])
