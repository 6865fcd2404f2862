"""Request and response bodies of mobile operators and recharges."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from gopay.api.schemas import Amount, Country, Currency, Name, Phone, UtcDatetime


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OperatorCreate(_Strict):
    name: Name
    country: Country
    currency: Currency = "USD"


class OperatorPublic(BaseModel):
    """A mobile operator; `wallet_id` is its payable account, the counterparty of recharges."""

    id: UUID
    name: str
    country: str
    currency: str
    wallet_id: UUID
    created_at: UtcDatetime


class RechargeCreate(_Strict):
    phone_number: Phone
    operator_id: UUID
    amount: Amount
    currency: Currency


class RechargePublic(BaseModel):
    """Airtime bought for a phone number: `pending` until the operator has answered."""

    id: UUID
    type: Literal["recharge"] = "recharge"
    status: Literal["pending", "succeeded", "failed"]
    phone_number: str
    operator_id: UUID
    amount: int
    currency: str
    operator_reference: str | None
    failure_reason: str | None
    created_at: UtcDatetime
