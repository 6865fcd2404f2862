"""Request and response bodies of billers, bill payments and biller settlements."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gopay.api.schemas import Amount, Currency, Name, UtcDatetime, WalletPublic

Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
                     Field(description="What the biller bills for: electricity, water, internet, ...")]
CustomerReference = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    Field(description="The payer's account or invoice number at the biller")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BillerBankAccount(_Strict):
    """Where a biller is settled to (shown back masked, never in full)."""

    iban: Annotated[str, Field(min_length=1, max_length=64)]
    holder_name: Name


class BillerCreate(_Strict):
    name: Name
    category: Category
    currency: Currency = "USD"
    bank_account: BillerBankAccount | None = None


class BillerPublic(BaseModel):
    """A biller as customers see it; `wallet_id` is its payable account, the counterparty of
    their bill payments in their history."""

    id: UUID
    name: str
    category: str
    currency: str
    wallet_id: UUID
    created_at: UtcDatetime


class BillerAdminPublic(BillerPublic):
    """A biller as staff see it: with its payable account and the bank account it is settled to."""

    bank_account: str | None
    payable: WalletPublic | None


class BillPaymentCreate(_Strict):
    biller_id: UUID
    customer_reference: CustomerReference
    amount: Amount
    currency: Currency


class BillPaymentPublic(BaseModel):
    id: UUID
    type: Literal["bill_payment"] = "bill_payment"
    status: str
    biller_id: UUID
    customer_reference: str
    amount: int
    currency: str
    wallet_id: UUID
    created_at: UtcDatetime


class SettlementCreate(_Strict):
    """How much to settle; without `amount`, all the payable account has available."""

    amount: Amount | None = None
    currency: Currency | None = None


class SettlementPublic(BaseModel):
    """A payout of what GoPay holds for a biller: `pending` until the PSP has paid it."""

    id: UUID
    type: Literal["settlement"] = "settlement"
    status: Literal["pending", "succeeded", "failed"]
    biller_id: UUID
    amount: int
    currency: str
    reference: str  # the bank account it went to, as statements name it
    psp_reference: str | None
    failure_reason: str | None
    created_at: UtcDatetime
