"""Payment requests between users: ask, pay, decline, cancel, and the list of both directions."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query

from gopay.aggregates.money import Money
from gopay.aggregates.payment_request import PaymentRequest, RequestStatus
from gopay.api.deps import (
    Customer,
    IdCursor,
    IdempotencyKey,
    SecondFactor,
    SystemDep,
    fingerprint,
    id_cursor,
)
from gopay.api.pagination import page_of
from gopay.api.payment_request_schemas import PaymentRequestCreate, PaymentRequestPublic
from gopay.api.problems import Problem
from gopay.api.schemas import Page
from gopay.api.step_up import confirm_step_up
from gopay.commands.payment_requests import (
    CancelPaymentRequest,
    DeclinePaymentRequest,
    PayPaymentRequest,
    RequestPayment,
)
from gopay.security.tokens import AccessClaims
from gopay.system import System

router = APIRouter(prefix="/v1/payment-requests", tags=["payment requests"])

def request_public(request: PaymentRequest, caller: AccessClaims, now: datetime
                   ) -> PaymentRequestPublic:
    """A request as the caller sees it, expired from the moment its time is up."""
    status = (RequestStatus.EXPIRED if request.status == RequestStatus.OPEN and request.expired_at(now)
              else request.status)
    return PaymentRequestPublic(
        id=request.id, status=status, role=_role(caller, request.requester_wallet_id),
        amount=request.amount, currency=request.currency, note=request.note,
        requester_wallet_id=request.requester_wallet_id, payer_wallet_id=request.payer_wallet_id,
        transfer_id=request.order_id, expires_at=datetime.fromisoformat(request.expires_at),
        created_at=request.created_on)


def _row_public(row: dict[str, Any], caller: AccessClaims) -> PaymentRequestPublic:
    return PaymentRequestPublic(
        id=row["id"], status=row["status_now"], role=_role(caller, row["requester_wallet_id"]),
        amount=row["amount"], currency=row["currency"], note=row["note"],
        requester_wallet_id=row["requester_wallet_id"], payer_wallet_id=row["payer_wallet_id"],
        transfer_id=row["order_id"], expires_at=row["expires_at"], created_at=row["created_at"])


def _role(caller: AccessClaims, requester_wallet_id: UUID) -> Literal["requester", "payer"]:
    return "requester" if caller.wallet_id == requester_wallet_id else "payer"


@router.post("", status_code=201, response_model=PaymentRequestPublic)
def create_payment_request(body: PaymentRequestCreate, caller: Customer, system: SystemDep,
                           idempotency_key: IdempotencyKey = None) -> PaymentRequestPublic:
    """Ask someone (e-mail, phone or wallet id) for money; it stays open `expires_in` seconds."""
    assert caller.wallet_id is not None, "customers have a wallet"
    longest = system.settings.payment_request_seconds
    if body.expires_in is not None and body.expires_in > longest:
        raise Problem(422, f"expires_in: a payment request stays open {longest} seconds at most",
                      "validation_error")
    request = system.commands.run(RequestPayment(
        requester_id=caller.user_id, requester_wallet_id=caller.wallet_id, payer=body.payer,
        money=Money.positive(body.amount, body.currency), note=body.note,
        valid_for=timedelta(seconds=body.expires_in or longest),
        idempotency_key=idempotency_key, fingerprint=fingerprint(body))).value
    return request_public(request, caller, system.commands.context.clock())


@router.get("", response_model=Page[PaymentRequestPublic])
def list_payment_requests(caller: Customer, system: SystemDep,
                          limit: Annotated[int, Query(ge=1, le=200)] = 50,
                          cursor: IdCursor = None,
                          role: Annotated[Literal["requester", "payer"] | None, Query()] = None,
                          status: Annotated[RequestStatus | None, Query()] = None,
                          ) -> Page[PaymentRequestPublic]:
    """Requests the caller made and was sent, newest first (`role` and `status` narrow it)."""
    assert caller.wallet_id is not None, "customers have a wallet"
    system.catch_up_reads()
    view, now = system.read_side.payment_requests, system.commands.context.clock()
    after = id_cursor(cursor)
    if after is not None and _seen_by(view.request(UUID(after), now), caller) is None:
        raise Problem(422, "cursor is not valid", "validation_error")
    rows = view.of_wallet(caller.wallet_id, now, limit=limit + 1,
                          after=UUID(after) if after else None, role=role, status=status)
    return page_of(Page[PaymentRequestPublic], rows, limit, lambda row: _row_public(row, caller),
                   lambda row: row["id"])


@router.get("/{request_id}", response_model=PaymentRequestPublic)
def get_payment_request(request_id: str, caller: Customer, system: SystemDep
                        ) -> PaymentRequestPublic:
    """A request, for the one who made it and the one it asks; anyone else is told it does not exist."""
    system.catch_up_reads()
    now = system.commands.context.clock()
    try:
        row = system.read_side.payment_requests.request(UUID(request_id), now)
    except ValueError:
        row = None
    seen = _seen_by(row, caller)
    if seen is None:
        raise Problem(404, "payment request not found")
    return _row_public(seen, caller)


@router.post("/{request_id}/pay", response_model=PaymentRequestPublic)
def pay_payment_request(request_id: str, caller: Customer, system: SystemDep,
                        idempotency_key: IdempotencyKey = None,
                        otp: SecondFactor = None) -> PaymentRequestPublic:
    """Pay a request sent to you: a transfer to the requester, under a transfer's rules
    (limits, frozen wallets, a fresh 2FA code from the step-up amount), paid once."""
    request = _addressed_to(system, caller, request_id)
    assert caller.wallet_id is not None, "customers have a wallet"
    confirm_step_up(system, caller, request.amount, PayPaymentRequest.operation,
                    idempotency_key, otp)
    system.commands.run(PayPaymentRequest(
        caller_id=caller.user_id, request_id=request.id, payer_wallet_id=caller.wallet_id,
        idempotency_key=idempotency_key,
        fingerprint=hashlib.sha256(f"pay/{request.id}".encode()).hexdigest()))
    return _now(system, request.id, caller)


@router.post("/{request_id}/decline", response_model=PaymentRequestPublic)
def decline_payment_request(request_id: str, caller: Customer, system: SystemDep
                            ) -> PaymentRequestPublic:
    """Decline a request sent to you (declining it again changes nothing)."""
    request = _addressed_to(system, caller, request_id)
    assert caller.wallet_id is not None, "customers have a wallet"
    system.commands.run(DeclinePaymentRequest(request_id=request.id,
                                              payer_wallet_id=caller.wallet_id))
    return _now(system, request.id, caller)


@router.post("/{request_id}/cancel", response_model=PaymentRequestPublic)
def cancel_payment_request(request_id: str, caller: Customer, system: SystemDep
                           ) -> PaymentRequestPublic:
    """Withdraw a request you made (cancelling it again changes nothing)."""
    assert caller.wallet_id is not None, "customers have a wallet"
    try:
        command = CancelPaymentRequest(request_id=UUID(request_id),
                                       requester_wallet_id=caller.wallet_id)
    except ValueError:
        raise Problem(404, "payment request not found") from None
    request = system.commands.run(command).value
    return request_public(request, caller, system.commands.context.clock())


def _seen_by(row: dict[str, Any] | None, caller: AccessClaims) -> dict[str, Any] | None:
    """The row, if the caller is a party to it."""
    if row is None or caller.wallet_id not in (row["requester_wallet_id"], row["payer_wallet_id"]):
        return None
    return row


def _addressed_to(system: System, caller: AccessClaims, request_id: str) -> PaymentRequest:
    """The request, if it asks the caller for money; to anyone else it does not exist."""
    try:
        request = system.app.find(UUID(request_id), PaymentRequest)
    except ValueError:
        request = None
    if request is None or request.payer_wallet_id != caller.wallet_id:
        raise Problem(404, "payment request not found")
    return request


def _now(system: System, request_id: UUID, caller: AccessClaims) -> PaymentRequestPublic:
    """The request as it is once the caller's command is saved."""
    return request_public(system.app.get(request_id, PaymentRequest), caller,
                          system.commands.context.clock())
