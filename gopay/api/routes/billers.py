"""Billers: staff set them up and settle them; customers find them to pay their bills."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response

from gopay.aggregates.biller import Biller
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus
from gopay.api.bill_schemas import (
    BillerAdminPublic,
    BillerBankAccount,
    BillerCreate,
    BillerPublic,
    SettlementCreate,
    SettlementPublic,
)
from gopay.api.deps import (
    Admin,
    Caller,
    IdCursor,
    IdempotencyKey,
    SystemDep,
    fingerprint,
    id_cursor,
    staff_with,
)
from gopay.api.pagination import page_of
from gopay.api.problems import Problem
from gopay.api.routes.wallet import PostingCursor, transaction_public, wallet_public
from gopay.api.schemas import Page, TransactionPublic
from gopay.commands.biller_settlements import SettleBiller
from gopay.commands.billers import BankAccountDetails, CreateBiller, SetBillerBankAccount
from gopay.security.tokens import AccessClaims
from gopay.system import System

router = APIRouter(tags=["bills"])

# Who may look into a biller's books, and who may pay a biller out.
BillerReader = Annotated[AccessClaims, Depends(staff_with("admin", "finance", "auditor"))]
Settler = Annotated[AccessClaims, Depends(staff_with("admin", "finance"))]


def biller_public(row: dict[str, Any]) -> BillerPublic:
    return BillerPublic(id=row["id"], name=row["name"], category=row["category"],
                        currency=row["currency"], wallet_id=row["wallet_id"],
                        created_at=row["created_at"])


def settlement_public(order: dict[str, Any], biller_id: UUID) -> SettlementPublic:
    return SettlementPublic(id=order["id"], status=order["status"], biller_id=biller_id,
                            amount=order["amount"], currency=order["currency"],
                            reference=order["note"], psp_reference=order["psp_reference"],
                            failure_reason=order["failure_reason"],
                            created_at=order["created_at"])


def _biller_row(system: System, biller_id: str) -> dict[str, Any]:
    try:
        row = system.read_side.providers.biller(UUID(biller_id))
    except ValueError:
        row = None
    if row is None:
        raise Problem(404, "biller not found")
    return row


def _admin_view(system: System, row: dict[str, Any]) -> BillerAdminPublic:
    payable = system.read_side.wallets.wallet(row["wallet_id"])
    return BillerAdminPublic(**biller_public(row).model_dump(),
                             bank_account=row["bank_account"] or None,
                             payable=wallet_public(payable) if payable else None)


def _shown(system: System, biller: Biller, position: int) -> BillerAdminPublic:
    """The biller as a command left it, once the read side shows it."""
    system.show(position)
    row = system.read_side.providers.biller(biller.id)
    if row is None:  # the read side is far behind: answer from the biller itself
        row = {"id": biller.id, "name": biller.name, "category": biller.category,
               "currency": biller.currency, "wallet_id": biller.wallet_id,
               "bank_account": biller.bank_account_shown, "created_at": biller.created_on}
    return _admin_view(system, row)


@router.post("/v1/admin/billers", status_code=201, response_model=BillerAdminPublic)
def create_biller(body: BillerCreate, staff: Admin, system: SystemDep,
                  idempotency_key: IdempotencyKey = None) -> BillerAdminPublic:
    """Set up a biller with its payable account; `bank_account` (or a later PUT) says where
    it is settled to."""
    account = body.bank_account
    outcome = system.commands.run(CreateBiller(
        staff_id=staff.user_id, name=body.name, category=body.category, currency=body.currency,
        bank_account=BankAccountDetails(account.iban, account.holder_name) if account else None,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint(body.model_copy(update={"bank_account": None}))))
    return _shown(system, outcome.value, outcome.position)


@router.get("/v1/billers", response_model=Page[BillerPublic])
def billers(caller: Caller, system: SystemDep,
            q: Annotated[str | None, Query(max_length=100,
                                           description="Part of the name or category")] = None,
            limit: Annotated[int, Query(ge=1, le=200)] = 50,
            cursor: IdCursor = None) -> Page[BillerPublic]:
    """The billers one can pay, newest first."""
    system.catch_up_reads()
    after = id_cursor(cursor)
    rows = system.read_side.providers.billers(q, limit=limit + 1,
                                              after=UUID(after) if after else None)
    return page_of(Page[BillerPublic], rows, limit, biller_public, lambda row: row["id"])


@router.get("/v1/admin/billers/{biller_id}", response_model=BillerAdminPublic)
def get_biller(biller_id: str, staff: BillerReader, system: SystemDep) -> BillerAdminPublic:
    """A biller with what GoPay holds for it (`payable`) and where it is settled to."""
    system.catch_up_reads()
    return _admin_view(system, _biller_row(system, biller_id))


@router.put("/v1/admin/billers/{biller_id}/bank-account", response_model=BillerAdminPublic)
def set_bank_account(biller_id: str, body: BillerBankAccount, staff: Admin,
                     system: SystemDep) -> BillerAdminPublic:
    """Settle the biller to this bank account from now on (IBAN checked, kept sealed)."""
    system.catch_up_reads()
    row = _biller_row(system, biller_id)
    outcome = system.commands.run(SetBillerBankAccount(
        staff_id=staff.user_id, biller_id=row["id"],
        bank_account=BankAccountDetails(body.iban, body.holder_name)))
    return _shown(system, outcome.value, outcome.position)


@router.get("/v1/admin/billers/{biller_id}/transactions", response_model=Page[TransactionPublic])
def biller_transactions(biller_id: str, staff: BillerReader, system: SystemDep,
                        limit: Annotated[int, Query(ge=1, le=200)] = 50,
                        cursor: PostingCursor = None) -> Page[TransactionPublic]:
    """The payable account's history, newest first: each bill payment with its payer and
    customer reference, each settlement."""
    system.catch_up_reads()
    row = _biller_row(system, biller_id)
    rows = system.read_side.wallets.transactions(
        row["wallet_id"], limit=limit + 1, before_seq=int(cursor) if cursor else None)
    return page_of(Page[TransactionPublic], rows, limit, transaction_public,
                   lambda line: line["seq"])


@router.post("/v1/admin/billers/{biller_id}/settlements", status_code=201,
             response_model=SettlementPublic,
             responses={202: {"description": "Accepted: the PSP has not paid it yet",
                              "model": SettlementPublic}})
def settle(biller_id: str, staff: Settler, system: SystemDep, response: Response,
           body: SettlementCreate | None = None,
           idempotency_key: IdempotencyKey = None) -> SettlementPublic:
    """Pay what GoPay holds for the biller (all that is available, or `amount`) out to its
    bank account. The money is held at once; 201 when the PSP answered, 202 `pending` when
    not yet (GoPay finds out and never pays twice)."""
    body = body or SettlementCreate()
    system.catch_up_reads()
    row = _biller_row(system, biller_id)
    money = None
    if body.amount is not None:
        money = Money.positive(body.amount, body.currency or row["currency"])
    elif body.currency is not None:
        raise Problem(422, "currency goes with an amount", "validation_error")
    order = system.commands.run(SettleBiller(
        caller_id=staff.user_id, biller_id=row["id"], money=money,
        idempotency_key=idempotency_key, fingerprint=fingerprint(body))).value
    if order.status == OrderStatus.PENDING:
        order = system.psp_process.call_at_once(order)
    if order.status == OrderStatus.PENDING:
        response.status_code = 202
    return settlement_public({"id": order.id, "status": order.status, "amount": order.amount,
                              "currency": order.currency, "note": order.note,
                              "psp_reference": order.psp_reference,
                              "failure_reason": order.failure_reason,
                              "created_at": order.created_on}, row["id"])


@router.get("/v1/admin/billers/{biller_id}/settlements/{settlement_id}",
            response_model=SettlementPublic)
def get_settlement(biller_id: str, settlement_id: str, staff: BillerReader,
                   system: SystemDep) -> SettlementPublic:
    system.catch_up_reads()
    biller = _biller_row(system, biller_id)
    try:
        row = system.read_side.wallets.order(UUID(settlement_id))
    except ValueError:
        row = None
    if (row is None or row["type"] != TransactionType.SETTLEMENT
            or row["payer_wallet_id"] != biller["wallet_id"]):
        raise Problem(404, "settlement not found")
    return settlement_public(row, biller["id"])
