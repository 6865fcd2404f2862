"""What the disputes endpoints take and answer."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gopay.aggregates.dispute import MAX_EVIDENCE, MAX_REASON
from gopay.api.schemas import Amount, UtcDatetime


class DisputeCreate(BaseModel):
    """A payer's dispute of a QR payment, bill payment or transfer."""

    model_config = ConfigDict(extra="forbid")

    transaction_id: UUID
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                             max_length=MAX_REASON)]
    amount: Amount | None = Field(default=None, description="Leave out to dispute all of it "
                                                            "that is left after refunds")


class EvidenceCreate(BaseModel):
    """The payee's answer to a dispute."""

    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=MAX_EVIDENCE)]


class DisputeDecision(BaseModel):
    """Staff's decision: for the customer (refunded) or the merchant (hold released)."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["customer", "merchant"]


class EvidencePublic(BaseModel):
    text: str
    at: str


class DisputePublic(BaseModel):
    """A dispute: what is claimed, what the payee's wallet held for it, and the decision."""

    id: UUID
    kind: Literal["payment", "chargeback"]
    status: Literal["open", "won", "lost"]
    amount: int
    currency: str
    held: int = Field(description="What the payee's wallet held for it (a chargeback: what "
                                  "the wallet gave back); the rest is booked to receivables")
    transaction_id: UUID
    reason: str
    customer_wallet_id: UUID
    merchant_wallet_id: UUID | None
    outcome: Literal["customer", "merchant"] | None = None
    evidence: list[EvidencePublic] = []
    created_at: UtcDatetime
    decided_at: UtcDatetime | None = None
