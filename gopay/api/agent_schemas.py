"""Request and response bodies of cash-ins and cash-outs at agents."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

from gopay.aggregates.cash_out import CashOutStatus
from gopay.api.schemas import Amount, Currency, UtcDatetime

Party = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320),
                  Field(description="An e-mail, an E.164 phone number or a wallet id")]


class CashInCreate(BaseModel):
    """Cash the customer handed over, to credit from the agent's float."""

    customer: Party
    amount: Amount
    currency: Currency


class CashInPublic(BaseModel):
    id: UUID
    type: Literal["cash_in"] = "cash_in"
    status: str
    amount: int
    currency: str
    agent_wallet_id: UUID
    customer_wallet_id: UUID
    created_at: UtcDatetime


class CashOutCreate(BaseModel):
    """Cash to take at an agent: the money is held until the agent confirms the code."""

    agent_id: Annotated[UUID, Field(description="The agent's account id")]
    amount: Amount
    currency: Currency


class CashOutPublic(BaseModel):
    """A cash-out as its customer and its agent see it (never with its code)."""

    id: UUID
    type: Literal["cash_out"] = "cash_out"
    status: CashOutStatus
    amount: int
    currency: str
    agent_id: UUID
    agent_wallet_id: UUID
    customer_wallet_id: UUID
    expires_at: UtcDatetime
    attempts_left: int
    failure_reason: str | None
    created_at: UtcDatetime


class CashOutCreated(CashOutPublic):
    """The new cash-out and its one-time code, for the customer to show the agent."""

    code: Annotated[str, Field(description="Ten digits, shown to the agent; GoPay keeps only "
                                           "a digest of it. Works once, until `expires_at`.")]
