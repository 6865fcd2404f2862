"""Support tickets: a customer opens one and writes, staff reply, assign and close."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from uuid import UUID, uuid4, uuid5

from gopay.aggregates.errors import NotFound, ValidationFailed
from gopay.aggregates.ledger import LEDGER_NAMESPACE
from gopay.aggregates.payment_order import PaymentOrder
from gopay.aggregates.support_ticket import SupportTicket
from gopay.aggregates.user import User
from gopay.commands.bus import Command, Context, in_batch
from gopay.commands.idempotency import repeat_of
from gopay.group_commit import UnitOfWork

# The staff roles that handle tickets (and so may be assigned one).
SUPPORT_ROLES = frozenset({"support", "admin"})


@dataclass(frozen=True, kw_only=True)
class OpenTicket(Command[SupportTicket]):
    """A customer asks staff something, optionally about one of their own transactions."""

    customer_id: UUID
    customer_wallet_id: UUID
    subject: str
    body: str
    transaction_id: UUID | None = None
    idempotency_key: str | None = None
    fingerprint: str = ""
    message_id: UUID = field(default_factory=uuid4)

    @cached_property
    def ticket_id(self) -> UUID:
        """Derived from the key, so a retry finds the same ticket; new for a command without one."""
        if self.idempotency_key is None:
            return uuid4()
        return uuid5(LEDGER_NAMESPACE, f"support-ticket/{self.customer_id}/{self.idempotency_key}")


@dataclass(frozen=True, kw_only=True)
class WriteToTicket(Command[SupportTicket]):
    """The ticket's customer writes another message."""

    ticket_id: UUID
    customer_id: UUID
    body: str
    message_id: UUID = field(default_factory=uuid4)


@dataclass(frozen=True, kw_only=True)
class ReplyToTicket(Command[SupportTicket]):
    """A staff member answers the customer (the route let only support roles through)."""

    ticket_id: UUID
    staff_id: UUID
    body: str
    message_id: UUID = field(default_factory=uuid4)


@dataclass(frozen=True, kw_only=True)
class AssignTicket(Command[SupportTicket]):
    ticket_id: UUID
    staff_id: UUID  # who will handle it
    by: UUID


@dataclass(frozen=True, kw_only=True)
class CloseTicket(Command[SupportTicket]):
    ticket_id: UUID
    by: UUID


def _own_ticket(command: OpenTicket) -> tuple[UUID, ...]:
    return (command.ticket_id,) if command.idempotency_key is not None else ()


def _as_it_is(ticket: SupportTicket) -> SupportTicket:
    return ticket


@in_batch(OpenTicket, probes=_own_ticket, answer=_as_it_is)
def open_ticket(command: OpenTicket, unit: UnitOfWork, context: Context) -> SupportTicket:
    existing = repeat_of(unit, command.ticket_id, SupportTicket, command.idempotency_key,
                         lambda ticket: ticket.request_fingerprint == command.fingerprint)
    if existing is not None:
        return existing
    if command.transaction_id is not None:
        order = unit.find(command.transaction_id, PaymentOrder)
        # One answer for another person's transaction and for none at all: no id is confirmed.
        if order is None or command.customer_wallet_id not in (order.payer_wallet_id,
                                                                order.payee_wallet_id):
            raise ValidationFailed("transaction_id: not a transaction of yours")
    ticket = SupportTicket.open(
        id=command.ticket_id, customer_id=command.customer_id,
        customer_wallet_id=command.customer_wallet_id, subject=command.subject,
        message_id=command.message_id, body=command.body,
        transaction_id=command.transaction_id, request_fingerprint=command.fingerprint)
    unit.add(ticket)
    return ticket


@in_batch(WriteToTicket)
def write_to_ticket(command: WriteToTicket, unit: UnitOfWork, context: Context) -> SupportTicket:
    ticket = _ticket(unit, command.ticket_id)
    if ticket.customer_id != command.customer_id:
        raise NotFound("ticket not found")  # another customer's ticket does not exist for them
    ticket.write(message_id=command.message_id, body=command.body)
    return ticket


@in_batch(ReplyToTicket)
def reply_to_ticket(command: ReplyToTicket, unit: UnitOfWork, context: Context) -> SupportTicket:
    ticket = _ticket(unit, command.ticket_id)
    ticket.reply(message_id=command.message_id, staff_id=command.staff_id, body=command.body)
    return ticket


@in_batch(AssignTicket)
def assign_ticket(command: AssignTicket, unit: UnitOfWork, context: Context) -> SupportTicket:
    ticket = _ticket(unit, command.ticket_id)
    assignee = unit.find(command.staff_id, User)
    if assignee is None or not assignee.is_staff or assignee.role not in SUPPORT_ROLES:
        raise ValidationFailed("staff_id: not a staff member with the support or admin role")
    ticket.assign(staff_id=assignee.id, by=command.by)
    return ticket


@in_batch(CloseTicket)
def close_ticket(command: CloseTicket, unit: UnitOfWork, context: Context) -> SupportTicket:
    ticket = _ticket(unit, command.ticket_id)
    ticket.close(by=command.by)
    return ticket


def _ticket(unit: UnitOfWork, ticket_id: UUID) -> SupportTicket:
    ticket = unit.find(ticket_id, SupportTicket)
    if ticket is None:
        raise NotFound("ticket not found")
    return ticket
