"""Merchants' payout schedules and the payouts they make, as the API reads and writes them."""

from __future__ import annotations

from datetime import date
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from gopay.aggregates.payout_schedule import WEEKDAYS, Frequency
from gopay.api.schemas import Amount, Currency, UtcDatetime

Weekday = Literal[WEEKDAYS]  # type: ignore[valid-type]  # the tuple's members, as a Literal


class PayoutScheduleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frequency: Literal["daily", "weekly"]
    weekday: Weekday | None = Field(default=None, description="The payday of a weekly schedule")
    minimum: Amount = Field(description="Pay out only when at least this much is available")
    currency: Currency | None = Field(default=None, description="The wallet's (the default)")
    payment_method_id: UUID = Field(description="One of your saved bank accounts")


class PayoutSchedulePublic(BaseModel):
    id: UUID
    status: Literal["active", "stopped"]
    frequency: Frequency
    weekday: str | None
    minimum: int
    currency: str
    payment_method_id: UUID
    bank_account: str = Field(description="Country and last four of the IBAN")
    starts_on: date = Field(description="The first UTC day it may pay out")
    last_period: str | None = Field(description="The last period paid out: YYYY-MM-DD (daily) "
                                                "or YYYY-Www (weekly)")


class MerchantPayoutPublic(BaseModel):
    id: UUID
    period: str
    status: Literal["pending", "succeeded", "failed", "created"]
    amount: int
    currency: str
    psp_reference: str | None
    failure_reason: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime | None
