"""The caller's wallet: balance and history."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from gopay.api.deps import Customer, SystemDep
from gopay.api.problems import Problem
from gopay.api.schemas import Page, Rfc3339Datetime, TransactionPublic, WalletPublic

router = APIRouter(prefix="/v1/wallet", tags=["wallet"])

TransactionType = Literal["topup", "payout", "transfer", "qr_payment", "bill_payment", "recharge",
                          "cash_in", "cash_out", "refund", "fee", "settlement", "adjustment"]

# The position of the last posting seen; 18 digits at most, so that it fits a bigint.
PostingCursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$",
                                            description="The `next_cursor` of the page before")]


def wallet_public(row: dict) -> WalletPublic:
    return WalletPublic(id=row["wallet_id"], currency=row["currency"], balance=row["balance"],
                        available=row["balance"] - row["held"], held=row["held"],
                        frozen=row["frozen"])


@router.get("", response_model=WalletPublic)
def wallet(caller: Customer, system: SystemDep) -> WalletPublic:
    system.catch_up_reads()
    row = system.read_side.wallets.wallet(caller.wallet_id)  # type: ignore[arg-type]
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
    before = int(cursor) if cursor is not None else None
    rows = system.read_side.wallets.transactions(
        caller.wallet_id, limit=limit + 1, before_seq=before, entry_type=type,  # type: ignore[arg-type]
        since=from_, until=to)
    data = [TransactionPublic(id=r["entry_id"], type=r["type"], direction=r["direction"],
                              amount=r["amount"], currency=r["currency"], status=r["status"],
                              counterparty=r["counterparty"], reference=r["reference"],
                              created_at=r["created_at"], balance_after=r["balance_after"])
            for r in rows[:limit]]
    next_cursor = str(rows[limit - 1]["seq"]) if len(rows) > limit else None
    return Page(data=data, next_cursor=next_cursor)
