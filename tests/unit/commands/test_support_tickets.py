"""Support tickets: about one's own transactions only, open ⇄ pending, closed for good."""

from __future__ import annotations

from typing import Any

import pytest

from gopay.aggregates.errors import IdempotencyConflict, InvalidState, NotFound, ValidationFailed
from gopay.aggregates.support_ticket import BODY_MAX, SUBJECT_MAX, SupportTicket, TicketStatus
from gopay.aggregates.user import User
from gopay.commands.support_tickets import (
    AssignTicket,
    CloseTicket,
    OpenTicket,
    ReplyToTicket,
    WriteToTicket,
)
from tests.unit.commands.in_memory import InMemoryGoPay, wallet_id


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    """Ada has a question."""
    return gopay.register("ada@example.com")


@pytest.fixture
def grace(gopay: InMemoryGoPay) -> User:
    return gopay.register("grace@example.com")


@pytest.fixture
def agent(gopay: InMemoryGoPay) -> User:
    """A support agent."""
    return gopay.register("help@gopay.example", kind="staff", role="support")


def open_ticket(gopay: InMemoryGoPay, customer: User, **fields: Any) -> SupportTicket:
    values: dict[str, Any] = {"subject": "Where is my money?", "body": "I sent it yesterday.",
                              **fields}
    return gopay.run(OpenTicket(customer_id=customer.id, customer_wallet_id=wallet_id(customer),
                                **values))


def ticket_now(gopay: InMemoryGoPay, ticket: SupportTicket) -> SupportTicket:
    return gopay.app.get(ticket.id, SupportTicket)


class TestOpening:
    def test_a_new_ticket_is_open_with_its_first_message(self, gopay: InMemoryGoPay,
                                                         ada: User) -> None:
        """Opened: open, nobody assigned, one message."""
        ticket = open_ticket(gopay, ada, subject="  Card declined  ")
        assert (ticket.status, ticket.subject, ticket.assignee, ticket.messages) == (
            TicketStatus.OPEN, "Card declined", None, 1)

    def test_about_a_transaction_of_either_party(self, gopay: InMemoryGoPay, ada: User,
                                                 grace: User) -> None:
        """The sender and the recipient of a transfer may both ask about it."""
        gopay.fund(ada, 1_000)
        sent = gopay.transfer(ada, "grace@example.com", 300)
        for customer in (ada, grace):
            assert open_ticket(gopay, customer, transaction_id=sent.id).transaction_id == sent.id

    def test_about_someone_elses_transaction_is_refused(self, gopay: InMemoryGoPay, ada: User,
                                                        grace: User) -> None:
        """Another person's transaction and an id that names none get the same refusal."""
        gopay.register("alan@example.com")
        gopay.fund(grace, 1_000)
        theirs = gopay.transfer(grace, "alan@example.com", 100)
        refusals = []
        for transaction_id in (theirs.id, ada.id):  # a payment, and an id that is no payment
            with pytest.raises(ValidationFailed) as refused:
                open_ticket(gopay, ada, transaction_id=transaction_id)
            refusals.append(str(refused.value))
        assert refusals[0] == refusals[1]

    @pytest.mark.parametrize(("field", "text"), [
        ("subject", ""), ("subject", "   "), ("subject", "s" * (SUBJECT_MAX + 1)),
        ("body", ""), ("body", "b" * (BODY_MAX + 1))])
    def test_empty_or_overlong_text_is_refused(self, gopay: InMemoryGoPay, ada: User,
                                               field: str, text: str) -> None:
        with pytest.raises(ValidationFailed, match=field):
            open_ticket(gopay, ada, **{field: text})

    def test_a_repeated_key_answers_the_same_ticket(self, gopay: InMemoryGoPay,
                                                    ada: User) -> None:
        """Same key and request: the first ticket; same key, other request: refused."""
        first = open_ticket(gopay, ada, idempotency_key="k1", fingerprint="a")
        assert open_ticket(gopay, ada, idempotency_key="k1", fingerprint="a").id == first.id
        with pytest.raises(IdempotencyConflict):
            open_ticket(gopay, ada, idempotency_key="k1", fingerprint="b")


class TestConversation:
    def test_open_pending_open_closed(self, gopay: InMemoryGoPay, ada: User,
                                      agent: User) -> None:
        """Staff's reply makes it wait on the customer; the customer's answer makes it staff's
        turn again; closed, it takes no more messages from anyone."""
        ticket = open_ticket(gopay, ada)
        replied = gopay.run(ReplyToTicket(ticket_id=ticket.id, staff_id=agent.id, body="Which?"))
        assert replied.status == TicketStatus.PENDING
        wrote = gopay.run(WriteToTicket(ticket_id=ticket.id, customer_id=ada.id, body="The 5th."))
        assert (wrote.status, wrote.messages) == (TicketStatus.OPEN, 3)
        closed = gopay.run(CloseTicket(ticket_id=ticket.id, by=agent.id))
        assert closed.status == TicketStatus.CLOSED
        with pytest.raises(InvalidState):
            gopay.run(WriteToTicket(ticket_id=ticket.id, customer_id=ada.id, body="Hello?"))
        with pytest.raises(InvalidState):
            gopay.run(ReplyToTicket(ticket_id=ticket.id, staff_id=agent.id, body="Hi"))
        with pytest.raises(InvalidState):
            gopay.run(AssignTicket(ticket_id=ticket.id, staff_id=agent.id, by=agent.id))
        version = ticket_now(gopay, ticket).version
        gopay.run(CloseTicket(ticket_id=ticket.id, by=agent.id))  # again: nothing recorded
        assert ticket_now(gopay, ticket).version == version

    def test_another_customer_cannot_write_to_it(self, gopay: InMemoryGoPay, ada: User,
                                                 grace: User) -> None:
        ticket = open_ticket(gopay, ada)
        with pytest.raises(NotFound):
            gopay.run(WriteToTicket(ticket_id=ticket.id, customer_id=grace.id, body="Me too"))
        assert ticket_now(gopay, ticket).messages == 1

    def test_the_reply_names_the_customer_it_is_for(self, gopay: InMemoryGoPay, ada: User,
                                                    agent: User) -> None:
        """The notification process addresses the reply by it."""
        ticket = open_ticket(gopay, ada)
        gopay.run(ReplyToTicket(ticket_id=ticket.id, staff_id=agent.id, body="On it"))
        *_, last = gopay.app.events.get(ticket.id)
        assert isinstance(last, SupportTicket.StaffReplied)
        assert (last.customer_id, last.staff_id, last.body) == (ada.id, agent.id, "On it")


class TestAssigning:
    def test_to_support_or_admin_staff(self, gopay: InMemoryGoPay, ada: User,
                                       agent: User) -> None:
        ticket = open_ticket(gopay, ada)
        for staff_member in (agent, gopay.admin):
            assigned = gopay.run(AssignTicket(ticket_id=ticket.id, staff_id=staff_member.id,
                                              by=gopay.admin.id))
            assert assigned.assignee == staff_member.id

    @pytest.mark.parametrize("who", ["finance", "auditor", "customer", "nobody"])
    def test_to_anyone_else_is_refused(self, gopay: InMemoryGoPay, ada: User, grace: User,
                                       who: str) -> None:
        ticket = open_ticket(gopay, ada)
        target = {"customer": grace.id, "nobody": ticket.id}.get(who) or gopay.register(
            f"{who}@gopay.example", kind="staff", role=who).id
        with pytest.raises(ValidationFailed, match="staff_id"):
            gopay.run(AssignTicket(ticket_id=ticket.id, staff_id=target, by=gopay.admin.id))
        assert ticket_now(gopay, ticket).assignee is None
