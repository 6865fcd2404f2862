"""Request and response bodies of maker-checker adjustments."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

from gopay.aggregates.ledger import SystemAccount
from gopay.api.schemas import Amount, Currency, UtcDatetime

ACCOUNT_PATTERN = ("^(" + "|".join(account.value for account in SystemAccount)
                   + r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")
Account = Annotated[str, StringConstraints(pattern=ACCOUNT_PATTERN),
                    Field(description="A wallet id, or one of GoPay's accounts (suspense, ...)")]


class AdjustmentProposalCreate(BaseModel):
    account: Account
    direction: Literal["credit", "debit"] = Field(description="Into the account, or out of it")
    amount: Amount
    currency: Currency
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    counter_account: Account | None = Field(
        default=None, description="The other side of the entry (default: adjustments)")


class AdjustmentRejection(BaseModel):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""


class AdjustmentProposalPublic(BaseModel):
    id: UUID
    status: Literal["proposed", "applied", "rejected"]
    account: str
    counter_account: str
    direction: Literal["credit", "debit"]
    amount: int
    currency: str
    reason: str
    proposed_by: UUID
    decided_by: UUID | None
    order_id: UUID | None
    rejection_reason: str
    created_at: UtcDatetime
    decided_at: UtcDatetime | None
