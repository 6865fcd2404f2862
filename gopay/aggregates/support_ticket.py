"""Support tickets: a customer's question to staff, its messages, who handles it and whether it is closed."""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import InvalidState, ValidationFailed

# Bounds on what people write: long enough for any real question, short enough for an inbox.
SUBJECT_MAX = 200
BODY_MAX = 5_000


class TicketStatus(StrEnum):
    OPEN = "open"        # waiting on staff
    PENDING = "pending"  # staff replied, waiting on the customer
    CLOSED = "closed"    # final: nothing more is written to it


def checked_text(field: str, text: str, longest: int) -> str:
    """The text without surrounding blanks; refused when empty or longer than `longest`."""
    text = text.strip()
    if not text:
        raise ValidationFailed(f"{field}: must not be empty")
    if len(text) > longest:
        raise ValidationFailed(f"{field}: at most {longest} characters")
    return text


class SupportTicket(Aggregate):
    """One customer's ticket, optionally about one of their transactions.

    The messages themselves live in the events (and the read model); the ticket keeps only
    what its rules need: whose it is, its status and who is assigned. Writing to a closed
    ticket is refused (409 `invalid_state`): a closed case stays closed, and a customer with
    more to say opens a new ticket, so staff reports count each case once.
    """

    class Opened(Aggregate.Created):
        customer_id: UUID
        customer_wallet_id: UUID
        subject: str
        message_id: UUID
        body: str
        transaction_id: UUID | None
        request_fingerprint: str

    @event(Opened)
    def __init__(self, id: UUID, customer_id: UUID, customer_wallet_id: UUID, subject: str,
                 message_id: UUID, body: str, transaction_id: UUID | None,
                 request_fingerprint: str) -> None:
        self.customer_id = customer_id
        self.customer_wallet_id = customer_wallet_id
        self.subject = subject
        self.transaction_id = transaction_id
        self.request_fingerprint = request_fingerprint
        self.status = TicketStatus.OPEN
        self.assignee: UUID | None = None
        self.messages = 1

    @classmethod
    def open(cls, *, id: UUID, customer_id: UUID, customer_wallet_id: UUID, subject: str,
             message_id: UUID, body: str, transaction_id: UUID | None,
             request_fingerprint: str = "") -> SupportTicket:
        """A new ticket whose first message is `body`."""
        return cls(id=id, customer_id=customer_id, customer_wallet_id=customer_wallet_id,
                   subject=checked_text("subject", subject, SUBJECT_MAX), message_id=message_id,
                   body=checked_text("body", body, BODY_MAX), transaction_id=transaction_id,
                   request_fingerprint=request_fingerprint)

    def write(self, *, message_id: UUID, body: str) -> None:
        """The customer writes again: the ticket is staff's turn (open) once more."""
        self._check_not_closed()
        self._customer_wrote(message_id=message_id, body=checked_text("body", body, BODY_MAX))

    def reply(self, *, message_id: UUID, staff_id: UUID, body: str) -> None:
        """Staff answer: the ticket waits on the customer (pending), who is told."""
        self._check_not_closed()
        self._staff_replied(message_id=message_id, staff_id=staff_id,
                            customer_id=self.customer_id,
                            body=checked_text("body", body, BODY_MAX))

    def assign(self, *, staff_id: UUID, by: UUID) -> None:
        """Hand the ticket to a staff member (the caller checked the role); again changes nothing."""
        self._check_not_closed()
        if staff_id != self.assignee:
            self._assigned(staff_id=staff_id, by=by)

    def close(self, *, by: UUID) -> None:
        """Close it for good; closing it again changes nothing."""
        if self.status != TicketStatus.CLOSED:
            self._closed(by=by)

    def _check_not_closed(self) -> None:
        if self.status == TicketStatus.CLOSED:
            raise InvalidState("this ticket is closed; open a new one")

    class CustomerWrote(Aggregate.Event):
        message_id: UUID
        body: str

    @event(CustomerWrote)
    def _customer_wrote(self, message_id: UUID, body: str) -> None:
        self.status = TicketStatus.OPEN
        self.messages += 1

    class StaffReplied(Aggregate.Event):
        message_id: UUID
        staff_id: UUID
        customer_id: UUID  # whom the reply is for: the notification addresses them by it
        body: str

    @event(StaffReplied)
    def _staff_replied(self, message_id: UUID, staff_id: UUID, customer_id: UUID,
                       body: str) -> None:
        self.status = TicketStatus.PENDING
        self.messages += 1

    class Assigned(Aggregate.Event):
        staff_id: UUID
        by: UUID

    @event(Assigned)
    def _assigned(self, staff_id: UUID, by: UUID) -> None:
        self.assignee = staff_id

    class Closed(Aggregate.Event):
        by: UUID

    @event(Closed)
    def _closed(self, by: UUID) -> None:
        self.status = TicketStatus.CLOSED
