"""Support tickets on PostgreSQL: the read model's lists, its rebuild from zero, and the reply notices."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
import pytest

from gopay.aggregates.support_ticket import SupportTicket
from gopay.commands.notification_preferences import ChangeNotificationPreferences
from gopay.commands.registration import Register
from gopay.commands.support_tickets import (
    AssignTicket,
    CloseTicket,
    OpenTicket,
    ReplyToTicket,
    WriteToTicket,
)
from gopay.system import System
from tests.support import open_wallets, transfer


@pytest.fixture
def people(system: System) -> list[Any]:
    return open_wallets(system.commands, 3, 10_000)


@pytest.fixture
def agent(system: System) -> Any:
    return system.commands.run(Register(email="help@gopay.example", password="x" * 12,
                                        kind="staff", full_name="Help", role="support")).value


def open_ticket(system: System, customer: Any, subject: str, **fields: Any) -> SupportTicket:
    return system.commands.run(OpenTicket(
        customer_id=customer.id, customer_wallet_id=customer.wallet_id, subject=subject,
        body=f"About {subject}", **fields)).value


def reply_notices(database_url: str, user_id: UUID) -> list[tuple[Any, ...]]:
    """A person's support.reply notices: (data, in_app, e-mails queued)."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT n.data, n.in_app, (SELECT count(*) FROM outbox o WHERE o.notification_id = n.id)"
            " FROM user_notifications n WHERE n.user_id = %s AND n.type = 'support.reply' "
            "ORDER BY n.seq", (user_id,)).fetchall()


def everything_listed(system: System, customers: list[Any]) -> dict[str, Any]:
    """Every list the API reads, every ticket's row and every message."""
    view = system.read_side.support_tickets
    staff_lists = {status: view.tickets(status=status, limit=100)
                   for status in (None, "open", "pending", "closed")}
    rows = staff_lists[None]
    return {"staff": staff_lists,
            "customers": {c.id: view.of_customer(c.id, status=None, limit=100) for c in customers},
            "tickets": {row["id"]: view.ticket(row["id"]) for row in rows},
            "messages": {row["id"]: view.messages(row["id"]) for row in rows}}


class TestTheReadModel:
    def test_lists_by_status_with_the_transaction_as_it_stands(
            self, system: System, people: list[Any], agent: Any) -> None:
        """Each status lists its tickets, newest first; a ticket shows its transaction's state."""
        ada, grace, _ = people
        transfer(system.commands, ada, grace, 250)
        system.read_side.catch_up()
        [sent] = [row for row in system.read_side.wallets.transactions(ada.wallet_id, limit=5)
                  if row["type"] == "transfer"]
        about = open_ticket(system, ada, "the transfer", transaction_id=sent["entry_id"])
        waiting = open_ticket(system, grace, "a question")
        system.commands.run(ReplyToTicket(ticket_id=waiting.id, staff_id=agent.id, body="Yes?"))
        done = open_ticket(system, ada, "done")
        system.commands.run(CloseTicket(ticket_id=done.id, by=agent.id))
        system.read_side.catch_up()

        view = system.read_side.support_tickets
        assert [[row["id"] for row in view.tickets(status=status, limit=10)]
                for status in ("open", "pending", "closed")] == [[about.id], [waiting.id],
                                                                 [done.id]]
        assert [row["id"] for row in view.of_customer(ada.id, status=None, limit=10)] == [
            done.id, about.id]
        row = view.ticket(about.id)
        assert row is not None
        assert (row["transaction_type"], row["transaction_status"], row["transaction_amount"],
                row["transaction_currency"]) == ("transfer", "succeeded", 250, "USD")

    def test_rebuilt_from_zero_it_lists_the_same(self, system: System, people: list[Any],
                                                 agent: Any) -> None:
        """Emptied and replayed from event zero, every list, row and message comes back the
        same, and nobody is told of a reply twice."""
        customers = people
        for number, customer in enumerate(customers * 2):
            ticket = open_ticket(system, customer, f"case {number}")
            if number % 2 == 0:
                system.commands.run(ReplyToTicket(ticket_id=ticket.id, staff_id=agent.id,
                                                  body=f"reply {number}"))
            if number % 3 == 0:
                system.commands.run(WriteToTicket(ticket_id=ticket.id, customer_id=customer.id,
                                                  body="more"))
                system.commands.run(AssignTicket(ticket_id=ticket.id, staff_id=agent.id,
                                                 by=agent.id))
            if number % 4 == 0:
                system.commands.run(CloseTicket(ticket_id=ticket.id, by=agent.id))
        system.read_side.catch_up()
        before = everything_listed(system, customers)
        assert {status: len(rows) for status, rows in before["staff"].items()} == {
            None: 6, "open": 3, "pending": 1, "closed": 2}
        told_before = [reply_notices(system.settings.database_url, c.id) for c in customers]

        system.read_side.rebuild()
        assert everything_listed(system, customers) == before
        assert [reply_notices(system.settings.database_url, c.id)
                for c in customers] == told_before


class TestReplyNotices:
    def test_each_staff_reply_is_told_once_by_the_channels_kept_on(
            self, system: System, database_url: str, people: list[Any], agent: Any) -> None:
        """A reply reaches the ticket's customer in the app and by e-mail; with e-mail turned
        off for support.reply, in the app only; the customer's own messages tell nobody."""
        ada, grace, _ = people
        ticket = open_ticket(system, ada, "card")
        system.commands.run(ReplyToTicket(ticket_id=ticket.id, staff_id=agent.id,
                                          body="Which card?"))
        system.commands.run(WriteToTicket(ticket_id=ticket.id, customer_id=ada.id, body="Visa"))
        system.commands.run(ChangeNotificationPreferences(
            user_id=ada.id, preferences={"support.reply": {"email": False}}))
        system.commands.run(ReplyToTicket(ticket_id=ticket.id, staff_id=agent.id,
                                          body="x" * 300))
        system.read_side.catch_up()
        told = reply_notices(database_url, ada.id)
        assert [(data["ticket_id"], data["excerpt"], in_app, emails)
                for data, in_app, emails in told] == [
            (str(ticket.id), "Which card?", True, 1), (str(ticket.id), "x" * 280, True, 0)]
        assert reply_notices(database_url, grace.id) == []
        assert reply_notices(database_url, agent.id) == []
