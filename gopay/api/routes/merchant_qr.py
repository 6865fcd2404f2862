"""Merchants' QR codes: made by the merchant (or its server), shown as text or as a PNG."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any, Literal
from uuid import UUID

import segno
from fastapi import APIRouter, Response

from gopay.aggregates.qr_code import QrCode, QrTerms
from gopay.api.deps import IdempotencyKey, SystemDep, fingerprint
from gopay.api.merchant_auth import Merchant, MerchantOrKey
from gopay.api.merchant_schemas import QrCodeCreate, QrCodePublic
from gopay.api.problems import Problem
from gopay.commands.qr_payments import CreateQrCode
from gopay.security.qr_codes import qr_payload
from gopay.system import System

router = APIRouter(prefix="/v1/merchant/qr", tags=["merchants"])


def qr_code_public(system: System, row: dict[str, Any]) -> QrCodePublic:
    terms = QrTerms(qr_id=row["id"], merchant_wallet_id=row["wallet_id"], amount=row["amount"],
                    currency=row["currency"], reference=row["reference"],
                    expires_at=row["expires_at"])
    now = system.commands.context.clock()
    status: Literal["open", "paid", "expired"] = ("paid" if row["payment_id"] else
              "expired" if terms.expires_at is not None and now >= terms.expires_at else "open")
    return QrCodePublic(id=row["id"], qr_payload=qr_payload(terms, system.settings.qr_key),
                        amount=row["amount"], currency=row["currency"], reference=row["reference"],
                        expires_at=row["expires_at"], merchant_wallet_id=row["wallet_id"],
                        status=status, payment_id=row["payment_id"], created_at=row["created_at"])


def _row_of(code: QrCode) -> dict[str, Any]:
    terms = code.terms
    return {"id": code.id, "wallet_id": code.wallet_id, "amount": code.amount,
            "currency": code.currency, "reference": code.reference,
            "expires_at": terms.expires_at, "payment_id": code.payment_id,
            "created_at": code.created_on}


@router.post("", status_code=201, response_model=QrCodePublic)
def create_qr_code(body: QrCodeCreate, caller: MerchantOrKey, system: SystemDep,
                   idempotency_key: IdempotencyKey = None) -> QrCodePublic:
    """A QR code for your customers to pay: a fixed amount (paid once), or an open amount.

    `qr_payload` is signed text: show it as a QR code (or fetch the PNG). Altered, it is
    refused; after `expires_at`, it is refused.
    """
    outcome = system.commands.run(CreateQrCode(
        merchant_id=caller.user_id, amount=body.amount, reference=body.reference,
        expires_in=timedelta(seconds=body.expires_in) if body.expires_in else None,
        idempotency_key=idempotency_key, fingerprint=fingerprint(body)))
    return qr_code_public(system, _row_of(outcome.value))


@router.get("/{qr_id}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "The QR code, as a PNG"}})
def qr_code_png(qr_id: str, caller: Merchant, system: SystemDep) -> Response:
    """One of your QR codes as an image to print or show on a screen."""
    code = _own(system, caller.user_id, qr_id)
    image = io.BytesIO()
    segno.make(code.qr_payload, error="m").save(image, kind="png", scale=8, border=4)
    return Response(image.getvalue(), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=300"})


@router.get("/{qr_id}", response_model=QrCodePublic)
def get_qr_code(qr_id: str, caller: Merchant, system: SystemDep) -> QrCodePublic:
    """One of your QR codes, with whether it was paid."""
    return _own(system, caller.user_id, qr_id)


def _own(system: System, merchant_id: UUID, qr_id: str) -> QrCodePublic:
    system.catch_up_reads()
    try:
        row = system.read_side.merchant.qr_code(UUID(qr_id))
    except ValueError:
        row = None
    if row is None or row["merchant_id"] != merchant_id:
        raise Problem(404, "QR code not found")
    return qr_code_public(system, row)
