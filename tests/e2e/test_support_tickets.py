"""Support tickets over HTTP: customers open and write; staff list, reply, assign, close; replies notify."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support import Client, fund, register, staff


@pytest.fixture(scope="module")
def helper(server, server_env) -> Client:  # type: ignore[no-untyped-def]
    """A support agent."""
    return staff(server.url, server_env, "support")


@pytest.fixture(scope="module")
def auditor(server, server_env) -> Client:  # type: ignore[no-untyped-def]
    return staff(server.url, server_env, "auditor")


@pytest.fixture
def ada(server) -> Client:  # type: ignore[no-untyped-def]
    """Ada has a question."""
    return register(server.url)


@pytest.fixture
def grace(server) -> Client:  # type: ignore[no-untyped-def]
    return register(server.url)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert (response.status_code, response.headers["content-type"]) == (
        status, "application/problem+json"), response.text
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, response.text
    return problem


def open_ticket(customer: Client, **body: Any) -> dict[str, Any]:
    return ok(customer.post("/v1/support/tickets", {"subject": "Where is my money?",
                                                   "body": "I sent it yesterday.", **body}), 201)


def write(client: Client, ticket: dict[str, Any], body: str) -> httpx.Response:
    return client.post(f"/v1/support/tickets/{ticket['id']}/messages", {"body": body})


def staff_id(client: Client) -> str:
    return str(ok(client.get("/v1/me"))["id"])


class TestAConversation:
    def test_open_pending_open_closed_with_every_message(self, ada: Client, helper: Client,
                                                         admin: Client) -> None:
        """Staff's reply makes the ticket wait on the customer, the customer's answer makes it
        staff's again; closed, it takes no more messages (409) and closing again changes nothing."""
        ticket = open_ticket(ada, subject="  Card declined ")
        assert {k: ticket[k] for k in ("status", "subject", "transaction_id", "assigned_to")} == {
            "status": "open", "subject": "Card declined", "transaction_id": None,
            "assigned_to": None}
        assert ticket["id"] and ticket["created_at"]

        reply = ok(write(helper, ticket, "Which card?"), 201)
        assert (reply["author"], reply["staff_id"], reply["ticket_status"]) == (
            "staff", staff_id(helper), "pending")
        answer = ok(write(ada, ticket, "The Visa."), 201)
        assert (answer["author"], answer["staff_id"], answer["ticket_status"]) == (
            "customer", None, "open")

        assigned = ok(admin.post(f"/v1/admin/tickets/{ticket['id']}/assign",
                                 {"staff_id": staff_id(helper)}))
        assert assigned["assigned_to"] == staff_id(helper)
        closed = ok(helper.post(f"/v1/admin/tickets/{ticket['id']}/close"))
        assert closed["status"] == "closed"
        assert ok(helper.post(f"/v1/admin/tickets/{ticket['id']}/close")) == closed

        refused(write(ada, ticket, "Hello?"), 409, "invalid_state")
        refused(write(helper, ticket, "Hi"), 409, "invalid_state")
        refused(admin.post(f"/v1/admin/tickets/{ticket['id']}/assign",
                           {"staff_id": staff_id(admin)}), 409, "invalid_state")
        seen = ok(ada.get(f"/v1/support/tickets/{ticket['id']}"))
        assert [(m["author"], m["body"]) for m in seen["messages"]] == [
            ("customer", "I sent it yesterday."), ("staff", "Which card?"),
            ("customer", "The Visa.")]
        assert (seen["status"], seen["message_count"]) == ("closed", 3)
        assert ok(helper.get(f"/v1/support/tickets/{ticket['id']}")) == seen

    def test_a_staff_reply_reaches_the_customer_as_a_notification(
            self, ada: Client, grace: Client, helper: Client) -> None:
        """The customer is told of each reply, with the ticket's id; nobody else is told."""
        ticket = open_ticket(ada)
        ok(write(ada, ticket, "Anyone?"), 201)  # the customer's own message tells nobody
        for text in ("Looking into it.", "Found it: it is back in your wallet."):
            ok(write(helper, ticket, text), 201)
        told = [n for n in ok(ada.get("/v1/notifications"))["data"] if n["type"] == "support.reply"]
        assert [(n["data"]["ticket_id"], n["body"].split(" Reply")[0]) for n in told] == [
            (ticket["id"], "Found it: it is back in your wallet."),
            (ticket["id"], "Looking into it.")]
        assert told[0]["title"] == "Support replied to your ticket"
        assert not [n for n in ok(grace.get("/v1/notifications"))["data"]
                    if n["type"] == "support.reply"]


class TestWhoSeesWhat:
    def test_another_customers_ticket_is_not_found_and_unchanged(self, ada: Client,
                                                                 grace: Client) -> None:
        """Grace gets the 404 an unknown id gets, for reading and for writing; Ada's ticket
        stays as it was and is not in Grace's list."""
        ticket = open_ticket(ada)
        before = ok(ada.get(f"/v1/support/tickets/{ticket['id']}"))
        for attempt in (lambda t: grace.get(f"/v1/support/tickets/{t}"),
                        lambda t: grace.post(f"/v1/support/tickets/{t}/messages", {"body": "x"})):
            answer, unknown = attempt(ticket["id"]), attempt(str(uuid.uuid4()))
            refused(answer, 404, "not_found")
            assert answer.json()["detail"] == unknown.json()["detail"]
        assert ok(ada.get(f"/v1/support/tickets/{ticket['id']}")) == before
        assert ok(grace.get("/v1/support/tickets"))["data"] == []
        assert ticket["id"] in [t["id"] for t in ok(ada.get("/v1/support/tickets"))["data"]]

    @pytest.mark.parametrize("role", ["finance", "sub_admin", "auditor"])
    def test_roles_without_the_right_are_forbidden_to_write(
            self, server, server_env, ada: Client, role: str) -> None:  # type: ignore[no-untyped-def]
        """Only support and admin staff reply, assign and close; auditors read the staff
        list and the tickets, finance and sub-admins not even that."""
        ticket = open_ticket(ada)
        other = staff(server.url, server_env, role)
        for attempt in (write(other, ticket, "hi"),
                        other.post(f"/v1/admin/tickets/{ticket['id']}/close"),
                        other.post(f"/v1/admin/tickets/{ticket['id']}/assign",
                                   {"staff_id": staff_id(other)}),
                        other.post("/v1/support/tickets", {"subject": "s", "body": "b"})):
            refused(attempt, 403, "forbidden")
        reads = (other.get("/v1/admin/tickets"), other.get(f"/v1/support/tickets/{ticket['id']}"))
        if role == "auditor":
            assert [r.status_code for r in reads] == [200, 200]
        else:
            for read in reads:
                refused(read, 403, "forbidden")
        assert ok(ada.get(f"/v1/support/tickets/{ticket['id']}"))["status"] == "open"

    def test_customers_cannot_use_the_staff_endpoints(self, ada: Client) -> None:
        ticket = open_ticket(ada)
        for attempt in (ada.get("/v1/admin/tickets"),
                        ada.post(f"/v1/admin/tickets/{ticket['id']}/close"),
                        ada.post(f"/v1/admin/tickets/{ticket['id']}/assign",
                                 {"staff_id": ada.user["id"]})):
            refused(attempt, 403, "forbidden")


class TestAboutATransaction:
    def test_shows_the_transaction_as_it_stands(self, ada: Client, grace: Client,
                                                admin: Client) -> None:
        """Either party may ask about a transfer; the ticket shows its type, status and amount."""
        fund(admin, ada.user["wallet_id"], 5_000)
        sent = ok(ada.post("/v1/transfers", {"recipient": grace.user["email"], "amount": 1_234,
                                             "currency": "USD"}), 201)
        for customer in (ada, grace):
            ticket = open_ticket(customer, transaction_id=sent["id"])
            assert ticket["transaction_id"] == sent["id"]
            assert ticket["transaction"] == {"id": sent["id"], "type": "transfer",
                                             "status": "succeeded", "amount": 1_234,
                                             "currency": "USD"}

    def test_another_persons_transaction_is_refused(self, ada: Client, grace: Client,
                                                    admin: Client) -> None:
        """Someone else's transaction and an id that names none get the same 422."""
        fund(admin, grace.user["wallet_id"], 5_000)
        theirs = ok(grace.post("/v1/transfers", {"recipient": register(grace.base_url).user[
            "email"], "amount": 100, "currency": "USD"}), 201)
        details = {refused(ada.post("/v1/support/tickets", {
            "subject": "s", "body": "b", "transaction_id": transaction_id}), 422,
            "validation_error")["detail"] for transaction_id in (theirs["id"], str(uuid.uuid4()))}
        assert len(details) == 1
        assert ok(ada.get("/v1/support/tickets"))["data"] == []


class TestStaffLists:
    def test_by_status_newest_first_page_by_page(self, ada: Client, grace: Client,
                                                 helper: Client, auditor: Client) -> None:
        """`status` narrows the list; pages follow `next_cursor` without gaps or repeats."""
        made = [open_ticket(customer, subject=f"case {n}")
                for n, customer in enumerate([ada, grace] * 3)]
        ok(write(helper, made[0], "Waiting on you."), 201)
        ok(helper.post(f"/v1/admin/tickets/{made[1]['id']}/close"))
        ours = {t["id"] for t in made}

        def listed(client: Client, query: str) -> list[str]:
            ids, cursor = [], None
            while True:
                page = ok(client.get(f"/v1/admin/tickets?limit=2{query}"
                                     + (f"&cursor={cursor}" if cursor else "")))
                ids += [t["id"] for t in page["data"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    return [i for i in ids if i in ours]

        newest_first = [t["id"] for t in reversed(made)]
        assert listed(helper, "") == newest_first
        assert listed(auditor, "&status=open") == [i for i in newest_first
                                                   if i not in (made[0]["id"], made[1]["id"])]
        assert listed(helper, "&status=pending") == [made[0]["id"]]
        assert listed(helper, "&status=closed") == [made[1]["id"]]
        mine = ok(ada.get("/v1/support/tickets?limit=2"))
        assert [t["id"] for t in mine["data"]] == [made[4]["id"], made[2]["id"]]
        rest = ok(ada.get(f"/v1/support/tickets?limit=2&cursor={mine['next_cursor']}"))
        assert ([t["id"] for t in rest["data"]], rest["next_cursor"]) == ([made[0]["id"]], None)


class TestBadInput:
    @pytest.mark.parametrize("body", [
        {"subject": "", "body": "b"}, {"subject": "   ", "body": "b"},
        {"subject": "s" * 201, "body": "b"}, {"subject": "s", "body": "b" * 5_001},
        {"subject": "s"}, {"body": "b"}, {"subject": 7, "body": "b"},
        {"subject": "s", "body": "b", "transaction_id": "not-an-id"},
        {"subject": "s", "body": "b", "surprise": True}, [], "text", None])
    def test_a_ticket_that_breaks_the_rules_is_refused(self, ada: Client, body: Any) -> None:
        refused(ada.post("/v1/support/tickets", body), 422, "validation_error")
        assert ok(ada.get("/v1/support/tickets"))["data"] == []

    def test_bad_messages_queries_and_assignments(  # type: ignore[no-untyped-def]
            self, server, server_env, ada: Client, grace: Client, helper: Client,
            admin: Client) -> None:
        """Empty or overlong messages, ids that are none, unknown statuses and cursors, and
        assignments to anyone but support or admin staff: each a 4xx problem, nothing changed."""
        ticket = open_ticket(ada)
        for body in ({"body": ""}, {"body": "b" * 5_001}, {}, {"body": ["x"]}):
            refused(ada.post(f"/v1/support/tickets/{ticket['id']}/messages", body), 422,
                    "validation_error")
        refused(ada.post("/v1/support/tickets/not-an-id/messages", {"body": "x"}), 404,
                "not_found")
        refused(ada.get("/v1/support/tickets/not-an-id"), 404, "not_found")
        refused(helper.get("/v1/admin/tickets?status=lost"), 422, "validation_error")
        refused(helper.get("/v1/admin/tickets?limit=0"), 422, "validation_error")
        refused(helper.get(f"/v1/admin/tickets?cursor={uuid.uuid4()}"), 422, "validation_error")
        # A cursor naming someone else's ticket says nothing about it.
        other = open_ticket(grace)
        refused(ada.get(f"/v1/support/tickets?cursor={other['id']}"), 422, "validation_error")
        refused(helper.post(f"/v1/admin/tickets/{uuid.uuid4()}/close"), 404, "not_found")
        finance = staff(server.url, server_env, "finance")
        for who in (ada.user["id"], staff_id(finance), str(uuid.uuid4()), "x"):
            refused(admin.post(f"/v1/admin/tickets/{ticket['id']}/assign", {"staff_id": who}),
                    422, "validation_error")
        assert ok(ada.get(f"/v1/support/tickets/{ticket['id']}"))["assigned_to"] is None

