"""The caller's wallet: balance and history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from gopay.aggregates.ledger import TransactionType
from gopay.api.deps import Customer, SystemDep
from gopay.api.pagination import page_of
from gopay.api.problems import Problem
from gopay.api.schemas import Page, Rfc3339Datetime, TransactionPublic, WalletPublic

router = APIRouter(prefix="/v1/wallet", tags=["wallet"])

# The position of the last posting seen; 18 digits at most, so that it fits a bigint.
PostingCursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$",
                                            description="The `next_cursor` of the page before")]


def wallet_public(row: dict[str, Any]) -> WalletPublic:
    return WalletPublic(id=row["wallet_id"], currency=row["currency"], balance=row["balance"],
                        available=row["balance"] - row["held"], held=row["held"],
                        frozen=row["frozen"])


def transaction_public(row: dict[str, Any]) -> TransactionPublic:
    return TransactionPublic(id=row["entry_id"], type=row["type"], direction=row["direction"],
                             amount=row["amount"], currency=row["currency"], status=row["status"],
                             counterparty=row["counterparty"], reference=row["reference"],
                             created_at=row["created_at"], balance_after=row["balance_after"])


@router.get("", response_model=WalletPublic)
def wallet(caller: Customer, system: SystemDep) -> WalletPublic:
    system.catch_up_reads()
    row = system.read_side.wallets.wallet(caller.wallet_id) if caller.wallet_id else None
    if row is None:
        raise Problem(404, "wallet not found")
    return wallet_public(row)


@router.get("/transactions", response_model=Page[TransactionPublic])
def transactions(caller: Customer, system: SystemDep,
                 limit: Annotated[int, Query(ge=1, le=200)] = 50,
                 cursor: PostingCursor = None,
                 type: Annotated[TransactionType | None, Query()] = None,
                 from_: Annotated[Rfc3339Datetime | None, Query(alias="from")] = None,
                 to: Annotated[Rfc3339Datetime | None, Query()] = None) -> Page[TransactionPublic]:
    """The wallet's postings, newest first, each with the balance it left."""
    system.catch_up_reads()
    rows = system.read_side.wallets.transactions(
        caller.wallet_id, limit=limit + 1, before_seq=int(cursor) if cursor else None,
        entry_type=type, since=from_, until=to) if caller.wallet_id else []
    return page_of(Page[TransactionPublic], rows, limit, transaction_public,
                   lambda row: row["seq"])
