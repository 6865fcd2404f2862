"""Support tickets: customers open and write; staff list, reply, assign and close."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from gopay.aggregates.support_ticket import TicketStatus
from gopay.api.deps import (
    Caller,
    Customer,
    IdCursor,
    IdempotencyKey,
    SystemDep,
    fingerprint,
    id_cursor,
    staff_with,
)
from gopay.api.pagination import page_of
from gopay.api.problems import Problem
from gopay.api.schemas import Page
from gopay.api.support_schemas import (
    TicketAssignment,
    TicketCreate,
    TicketDetail,
    TicketMessageCreate,
    TicketMessageCreated,
    TicketMessagePublic,
    TicketPublic,
    TicketTransaction,
)
from gopay.commands.support_tickets import (
    SUPPORT_ROLES,
    AssignTicket,
    CloseTicket,
    OpenTicket,
    ReplyToTicket,
    WriteToTicket,
)
from gopay.security.tokens import AccessClaims
from gopay.system import System

router = APIRouter(tags=["support"])

# Staff who handle tickets, and those who may also read them (auditors: read only).
SupportStaff = Annotated[AccessClaims, Depends(staff_with(*SUPPORT_ROLES))]
StaffReader = Annotated[AccessClaims, Depends(staff_with(*SUPPORT_ROLES, "auditor"))]
READERS = SUPPORT_ROLES | {"auditor"}
NOT_FOUND = "ticket not found"
# The read side lagged past its timeout after a write: say so rather than guess.
LAGGING = "saved, but it cannot be shown yet; read the ticket again"


@router.post("/v1/support/tickets", status_code=201, response_model=TicketDetail)
def open_ticket(body: TicketCreate, caller: Customer, system: SystemDep,
                idempotency_key: IdempotencyKey = None) -> TicketDetail:
    """Ask support something, optionally about one of your own transactions (any other id: 422)."""
    assert caller.wallet_id is not None, "customers have a wallet"
    outcome = system.commands.run(OpenTicket(
        customer_id=caller.user_id, customer_wallet_id=caller.wallet_id, subject=body.subject,
        body=body.body, transaction_id=body.transaction_id, idempotency_key=idempotency_key,
        fingerprint=fingerprint(body)))
    system.show(outcome.position)
    return _detail(system, outcome.value.id)


@router.get("/v1/support/tickets", response_model=Page[TicketPublic])
def my_tickets(caller: Customer, system: SystemDep,
               status: Annotated[TicketStatus | None, Query()] = None,
               limit: Annotated[int, Query(ge=1, le=200)] = 50,
               cursor: IdCursor = None) -> Page[TicketPublic]:
    """Your tickets, newest first (`status` narrows it)."""
    system.catch_up_reads()
    view = system.read_side.support_tickets
    after = _cursor(cursor, lambda row: row["customer_id"] == caller.user_id, system)
    rows = view.of_customer(caller.user_id, status=status, limit=limit + 1, after=after)
    return page_of(Page[TicketPublic], rows, limit, ticket_public, lambda row: row["id"])


@router.get("/v1/support/tickets/{ticket_id}", response_model=TicketDetail)
def get_ticket(ticket_id: str, caller: Caller, system: SystemDep) -> TicketDetail:
    """The ticket with its messages, for its customer and for support staff and auditors;
    another customer is told it does not exist."""
    _may_read_tickets(caller)
    system.catch_up_reads()
    row = system.read_side.support_tickets.ticket(_ticket_id(ticket_id))
    if row is None or not _sees(caller, row):
        raise Problem(404, NOT_FOUND)
    return _detail(system, row["id"], row)


@router.post("/v1/support/tickets/{ticket_id}/messages", status_code=201,
             response_model=TicketMessageCreated)
def write_message(ticket_id: str, body: TicketMessageCreate, caller: Caller,
                  system: SystemDep) -> TicketMessageCreated:
    """The customer writes (the ticket is open again) or support staff reply (it is pending,
    and the customer is notified); a closed ticket takes no more messages (409)."""
    ticket = _ticket_id(ticket_id)
    command: WriteToTicket | ReplyToTicket
    if caller.kind == "staff":
        if caller.role not in SUPPORT_ROLES:
            raise Problem(403, "your role does not allow this")
        command = ReplyToTicket(ticket_id=ticket, staff_id=caller.user_id, body=body.body)
    elif caller.wallet_id is not None:
        command = WriteToTicket(ticket_id=ticket, customer_id=caller.user_id, body=body.body)
    else:
        raise Problem(403, "only customers and support staff can do this")
    outcome = system.commands.run(command)
    system.show(outcome.position)
    message = next((m for m in system.read_side.support_tickets.messages(ticket)
                    if m["id"] == command.message_id), None)
    if message is None:
        raise Problem(503, LAGGING)
    return TicketMessageCreated(**_message_public(message).model_dump(), ticket_id=ticket,
                                ticket_status=outcome.value.status)


@router.get("/v1/admin/tickets", response_model=Page[TicketPublic])
def tickets(staff: StaffReader, system: SystemDep,
            status: Annotated[TicketStatus | None, Query()] = None,
            assigned_to: Annotated[UUID | None, Query()] = None,
            limit: Annotated[int, Query(ge=1, le=200)] = 50,
            cursor: IdCursor = None) -> Page[TicketPublic]:
    """Everyone's tickets, newest first: `status=open` is what waits on staff."""
    system.catch_up_reads()
    after = _cursor(cursor, lambda row: True, system)
    rows = system.read_side.support_tickets.tickets(status=status, assignee=assigned_to,
                                                    limit=limit + 1, after=after)
    return page_of(Page[TicketPublic], rows, limit, ticket_public, lambda row: row["id"])


@router.post("/v1/admin/tickets/{ticket_id}/assign", response_model=TicketDetail)
def assign(ticket_id: str, body: TicketAssignment, staff: SupportStaff, system: SystemDep
           ) -> TicketDetail:
    """Hand the ticket to a staff member with the support or admin role (anyone else: 422)."""
    outcome = system.commands.run(AssignTicket(ticket_id=_ticket_id(ticket_id),
                                               staff_id=body.staff_id, by=staff.user_id))
    system.show(outcome.position)
    return _detail(system, outcome.value.id)


@router.post("/v1/admin/tickets/{ticket_id}/close", response_model=TicketDetail)
def close(ticket_id: str, staff: SupportStaff, system: SystemDep) -> TicketDetail:
    """Close the ticket for good (closing it again changes nothing)."""
    outcome = system.commands.run(CloseTicket(ticket_id=_ticket_id(ticket_id), by=staff.user_id))
    system.show(outcome.position)
    return _detail(system, outcome.value.id)


def ticket_public(row: dict[str, Any]) -> TicketPublic:
    return TicketPublic(**_ticket_fields(row))


def _ticket_fields(row: dict[str, Any]) -> dict[str, Any]:
    transaction = None
    if row["transaction_id"] is not None and row["transaction_status"] is not None:
        transaction = TicketTransaction(
            id=row["transaction_id"], type=row["transaction_type"],
            status=row["transaction_status"], amount=row["transaction_amount"],
            currency=row["transaction_currency"])
    return {"id": row["id"], "status": row["status"], "subject": row["subject"],
            "transaction_id": row["transaction_id"], "transaction": transaction,
            "customer_id": row["customer_id"], "assigned_to": row["assignee"],
            "message_count": row["messages"], "created_at": row["created_at"],
            "updated_at": row["updated_at"]}


def _message_public(row: dict[str, Any]) -> TicketMessagePublic:
    return TicketMessagePublic(id=row["id"], author=row["author"], staff_id=row["staff_id"],
                               body=row["body"], created_at=row["created_at"])


def _detail(system: System, ticket_id: UUID, row: dict[str, Any] | None = None) -> TicketDetail:
    view = system.read_side.support_tickets
    row = row or view.ticket(ticket_id)
    if row is None:
        raise Problem(503, LAGGING)
    return TicketDetail(**_ticket_fields(row),
                        messages=[_message_public(m) for m in view.messages(ticket_id)])


def _may_read_tickets(caller: AccessClaims) -> None:
    if caller.kind == "staff" and caller.role not in READERS:
        raise Problem(403, "your role does not allow this")
    if caller.kind != "staff" and caller.wallet_id is None:
        raise Problem(403, "only customers with a wallet can do this")


def _sees(caller: AccessClaims, row: dict[str, Any]) -> bool:
    return caller.kind == "staff" or row["customer_id"] == caller.user_id


def _ticket_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise Problem(404, NOT_FOUND) from None


def _cursor(cursor: str | None, seen: Callable[[dict[str, Any]], bool],
            system: System) -> UUID | None:
    """The id a page starts after: a ticket the caller may list, else 422."""
    after = id_cursor(cursor)
    if after is None:
        return None
    row = system.read_side.support_tickets.ticket(UUID(after))
    if row is None or not seen(row):
        raise Problem(422, "cursor is not valid", "validation_error")
    return UUID(after)
