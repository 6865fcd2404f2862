"""Top-ups and payouts: money in from, and out to, the caller's saved payment methods, via the PSP."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.api.deps import Customer, IdempotencyKey, SecondFactor, SystemDep, fingerprint
from gopay.api.problems import Problem
from gopay.api.routes.transfers import request_country
from gopay.api.schemas import ExternalPaymentCreate, ExternalPaymentPublic
from gopay.api.step_up import confirm_step_up
from gopay.commands.money_flow import MoneyCommand
from gopay.commands.payouts import RequestPayout
from gopay.commands.topups import RequestTopUp
from gopay.security.tokens import AccessClaims
from gopay.system import System

router = APIRouter(tags=["top-ups and payouts"])


def external_payment_public(row: dict[str, Any]) -> ExternalPaymentPublic:
    wallet_id = row["payee_wallet_id"] if row["type"] == TransactionType.TOPUP else row["payer_wallet_id"]
    return ExternalPaymentPublic(id=row["id"], type=row["type"], status=row["status"],
                                 amount=row["amount"], currency=row["currency"],
                                 wallet_id=wallet_id, psp_reference=row["psp_reference"],
                                 failure_reason=row["failure_reason"],
                                 created_at=row["created_at"])


def order_public(order: PaymentOrder) -> ExternalPaymentPublic:
    """The order as it stands now, after the PSP's answer (`pending`: answered 202).

    The order itself, as the commands answered with it, not the read side: the answer need
    not wait for the projections (a later query does, to read its own writes).
    """
    return external_payment_public({
        "id": order.id, "type": order.order_type, "status": order.status, "amount": order.amount,
        "currency": order.currency, "payer_wallet_id": order.payer_wallet_id,
        "payee_wallet_id": order.payee_wallet_id, "psp_reference": order.psp_reference,
        "failure_reason": order.failure_reason, "created_at": order.created_on})


async def call_psp(system: System, order: PaymentOrder) -> PaymentOrder:
    """A pending order's call to the PSP, made at once (a failure is retried later)."""
    if order.status == OrderStatus.PENDING:
        return await system.psp_process.call_at_once_async(order)
    return order


def top_up_command(caller: AccessClaims, body: ExternalPaymentCreate,
                   idempotency_key: str | None) -> RequestTopUp:
    assert caller.wallet_id is not None, "customers have a wallet"
    return RequestTopUp(caller_id=caller.user_id, wallet_id=caller.wallet_id,
                        payment_method_id=body.payment_method_id,
                        money=Money.positive(body.amount, body.currency),
                        idempotency_key=idempotency_key, fingerprint=fingerprint(body))


async def _request(system: System, command: MoneyCommand,
                   response: Response) -> ExternalPaymentPublic:
    """Save the order and its PSP task, then ask the PSP at once.

    Awaited, not run in a thread: the group committer's writer thread runs the batches, and
    the request holds nothing while the PSP works.
    """
    order = await call_psp(system, (await system.commands.run_async(command)).value)
    if order.status == OrderStatus.PENDING:
        response.status_code = 202
    return order_public(order)


@router.post("/v1/topups", status_code=201, response_model=ExternalPaymentPublic,
             responses={202: {"description": "Accepted: the PSP has not settled it yet",
                              "model": ExternalPaymentPublic}})
async def create_top_up(body: ExternalPaymentCreate, caller: Customer, system: SystemDep,
                        response: Response,
                        idempotency_key: IdempotencyKey = None) -> ExternalPaymentPublic:
    """Charge a saved card, bank account or digital wallet and credit the wallet.

    201 with the outcome when the PSP answered; 202 `pending` when it has not yet (GoPay
    finds out from its webhook or by asking, and never charges twice).
    """
    return await _request(system, top_up_command(caller, body, idempotency_key), response)


@router.post("/v1/payouts", status_code=201, response_model=ExternalPaymentPublic,
             responses={202: {"description": "Accepted: the PSP has not paid it yet",
                              "model": ExternalPaymentPublic}})
async def create_payout(body: ExternalPaymentCreate, caller: Customer, system: SystemDep,
                        response: Response, request: Request,
                        idempotency_key: IdempotencyKey = None,
                        otp: SecondFactor = None) -> ExternalPaymentPublic:
    """Pay out to a saved bank account or card; the money is held at once.

    The PSP's success takes the held money, its failure gives it back. From the step-up
    amount up, a user with 2FA on sends a fresh code in `GoPay-OTP`.
    """
    assert caller.wallet_id is not None, "customers have a wallet"
    if body.amount >= system.settings.step_up_amount:
        await run_in_threadpool(confirm_step_up, system, caller, body.amount,
                                RequestPayout.operation, idempotency_key, otp)
    country = request_country(system.settings.trusted_proxies,
                              request.client.host if request.client else None,
                              request.headers.get("x-forwarded-for"))
    return await _request(system, RequestPayout(
        caller_id=caller.user_id, wallet_id=caller.wallet_id,
        payment_method_id=body.payment_method_id,
        money=Money.positive(body.amount, body.currency),
        idempotency_key=idempotency_key, fingerprint=fingerprint(body),
        device_id=caller.device_id, client_country=country), response)


@router.get("/v1/topups/{order_id}", response_model=ExternalPaymentPublic)
def get_top_up(order_id: str, caller: Customer, system: SystemDep) -> ExternalPaymentPublic:
    """One of your top-ups; anyone else's does not exist."""
    return _shown(system, caller, order_id, TransactionType.TOPUP, "payee_wallet_id", "top-up")


@router.get("/v1/payouts/{order_id}", response_model=ExternalPaymentPublic)
def get_payout(order_id: str, caller: Customer, system: SystemDep) -> ExternalPaymentPublic:
    """One of your payouts; anyone else's does not exist."""
    return _shown(system, caller, order_id, TransactionType.PAYOUT, "payer_wallet_id", "payout")


def _shown(system: System, caller: AccessClaims, order_id: str, kind: TransactionType,
           owner_column: str, noun: str) -> ExternalPaymentPublic:
    system.catch_up_reads()
    try:
        row = system.read_side.wallets.order(UUID(order_id))
    except ValueError:
        row = None
    if row is None or row["type"] != kind or row[owner_column] != caller.wallet_id:
        raise Problem(404, f"{noun} not found")
    return external_payment_public(row)

