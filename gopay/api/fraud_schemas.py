"""What the fraud review queue and the rules document look like over HTTP."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from gopay.api.schemas import UtcDatetime


class ReviewPublic(BaseModel):
    """A payment held for review: why, what the sender had done, and the decision."""

    id: UUID
    order_id: UUID
    status: str
    sender_wallet_id: UUID
    amount: int
    currency: str
    score: int
    reasons: list[str]
    sender_activity: dict[str, int]
    decided_by: UUID | None = None
    note: str = ""
    created_at: UtcDatetime
    decided_at: UtcDatetime | None = None


class ReviewDecision(BaseModel):
    """A reviewer's optional note on an approval or a rejection."""

    note: str = Field(default="", max_length=500)


class VelocityRule(BaseModel):
    model_config = ConfigDict(strict=True)  # a threshold is a number, never `true` or "5"

    window_seconds: int = Field(ge=1, le=86_400)
    max_count: int = Field(ge=0)
    max_amount: int = Field(ge=0)
    score: int = Field(ge=0)


class FraudRulesDocument(BaseModel):
    """Every threshold and score in force: PUT takes back what GET gave, changed."""

    model_config = ConfigDict(strict=True)

    hold_score: int = Field(ge=1)
    refuse_score: int = Field(ge=1)
    sender_velocity: VelocityRule
    device_velocity: VelocityRule
    recipient_velocity: VelocityRule
    history_multiple: int = Field(ge=0)
    history_min_payments: int = Field(ge=0)
    history_min_amount: int = Field(ge=0)
    history_score: int = Field(ge=0)
    new_device_amount: int = Field(ge=0)
    new_device_score: int = Field(ge=0)
    country_score: int = Field(ge=0)
    blocked_counterparties: list[str] = Field(max_length=10_000)
    blocked_score: int = Field(ge=0)

    def as_document(self) -> dict[str, Any]:
        return self.model_dump()
