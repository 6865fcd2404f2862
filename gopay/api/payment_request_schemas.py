"""Request and response bodies of payment requests between users."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StrictInt, StringConstraints

from gopay.aggregates.payment_request import RequestStatus
from gopay.api.schemas import Amount, Currency, Text, UtcDatetime


class PaymentRequestCreate(BaseModel):
    payer: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320),
                     Field(description="Who is asked to pay: an e-mail, an E.164 phone number "
                                       "or a wallet id")]
    amount: Amount
    currency: Currency
    note: Text = ""
    expires_in: Annotated[StrictInt | None, Field(
        ge=1, description="Seconds it stays open; by default, and at most, "
                          "GOPAY_PAYMENT_REQUEST_SECONDS")] = None


class PaymentRequestPublic(BaseModel):
    id: UUID
    status: RequestStatus
    role: Literal["requester", "payer"] = Field(description="The caller's part in it")
    amount: int
    currency: str
    note: str
    requester_wallet_id: UUID
    payer_wallet_id: UUID
    transfer_id: UUID | None = Field(description="The transfer that paid it")
    expires_at: UtcDatetime
    created_at: UtcDatetime
