"""Request and response bodies of support tickets."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gopay.aggregates.support_ticket import BODY_MAX, SUBJECT_MAX, TicketStatus
from gopay.api.schemas import UtcDatetime

Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=SUBJECT_MAX)]
Body = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=BODY_MAX)]


class TicketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Subject
    body: Body = Field(description="The first message")
    transaction_id: UUID | None = Field(
        default=None, description="One of your own transactions the ticket is about")


class TicketMessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Body


class TicketAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    staff_id: UUID = Field(description="A staff member with the support or admin role")


class TicketTransaction(BaseModel):
    """The ticket's transaction as it stands now."""

    id: UUID
    type: str
    status: str
    amount: int
    currency: str


class TicketMessagePublic(BaseModel):
    id: UUID
    author: Literal["customer", "staff"]
    staff_id: UUID | None = Field(description="Who replied, on staff messages")
    body: str
    created_at: UtcDatetime


class TicketPublic(BaseModel):
    id: UUID
    status: TicketStatus
    subject: str
    transaction_id: UUID | None
    transaction: TicketTransaction | None = Field(
        description="The transaction's current state, when the ticket is about one")
    customer_id: UUID
    assigned_to: UUID | None
    message_count: int
    created_at: UtcDatetime
    updated_at: UtcDatetime


class TicketDetail(TicketPublic):
    messages: list[TicketMessagePublic] = Field(description="Oldest first")


class TicketMessageCreated(TicketMessagePublic):
    ticket_id: UUID
    ticket_status: TicketStatus = Field(description="The ticket's status after this message")
