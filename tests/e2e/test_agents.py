"""Agents over HTTP: cash-ins, cash-outs paid against a one-time code, commissions, refusals and races."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import new_database
from tests.support import NO_LIMIT, Client, fund, gopay_env, register

CODE_SECONDS = 5  # short enough to see a code expire, long enough to use one
LIMITS = {"unverified": {**NO_LIMIT, "per_payment": 100_000}, "verified": NO_LIMIT}
# 0.5 % commission on cash-ins; cash-outs cost the customer 1 % and earn the agent 0.5 % + 10.
FEES = {"cash_in": {"commission": {"bps": 50}},
        "cash_out": {"bps": 100, "commission": {"bps": 50, "fixed": 10}}}


@pytest.fixture(scope="module")
def server_env(postgres_server, tmp_path_factory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return gopay_env(new_database(postgres_server), tmp_path_factory.mktemp("var"),
                     GOPAY_CASH_OUT_CODE_SECONDS=str(CODE_SECONDS),
                     GOPAY_CASH_OUT_CODE_ATTEMPTS="3", GOPAY_KYC_LIMITS=json.dumps(LIMITS),
                     GOPAY_FEES=json.dumps(FEES))


@pytest.fixture
def agent(server, admin: Client) -> Client:  # type: ignore[no-untyped-def]
    agent = register(server.url, kind="agent")
    fund(admin, agent.user["wallet_id"], 500_000)
    return agent


@pytest.fixture
def customer(server, admin: Client) -> Client:  # type: ignore[no-untyped-def]
    customer = register(server.url)
    fund(admin, customer.user["wallet_id"], 50_000)
    return customer


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert (response.status_code, response.headers["content-type"]) == (
        status, "application/problem+json"), response.text
    assert response.json()["code"] == code, response.text
    return response.json()


def wallet(client: Client) -> dict[str, Any]:
    return ok(client.get("/v1/wallet"))


def cash_out(customer: Client, agent: Client, amount: int, **kwargs: Any) -> httpx.Response:
    return customer.post("/v1/cash-outs", {"agent_id": agent.user["id"], "amount": amount,
                                           "currency": "USD"}, **kwargs)


def wrong(code: str) -> str:
    return code[:4] + f"{(int(code[4:]) + 1) % 10**6:06d}"


def eventually(check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "did not happen in time"
        time.sleep(0.2)


class TestCashIn:
    def test_the_float_credits_the_customer_and_pays_a_commission(self, agent: Client,
                                                                  customer: Client) -> None:
        """Both see a `cash_in` line naming the other; the agent also its commission."""
        body = {"customer": customer.user["email"], "amount": 10_000, "currency": "USD"}
        made = ok(agent.post("/v1/agent/cash-ins", body), 201)
        assert (made["type"], made["status"], made["amount"]) == ("cash_in", "succeeded", 10_000)
        assert made["customer_wallet_id"] == customer.user["wallet_id"]
        assert (wallet(agent)["balance"], wallet(customer)["balance"]) == (490_050, 60_000)
        reference = f"agent {agent.user['id']}"
        agent_lines = [(h["type"], h["direction"], h["amount"], h["counterparty"], h["reference"])
                       for h in agent.history() if h["id"] == made["id"]]
        assert sorted(agent_lines) == [
            ("cash_in", "debit", 10_000, customer.user["wallet_id"], reference),
            ("commission", "credit", 50, "fees", reference)]
        [line] = [h for h in customer.history() if h["id"] == made["id"]]
        assert (line["type"], line["direction"], line["counterparty"], line["reference"]) == (
            "cash_in", "credit", agent.user["wallet_id"], reference)

    def test_a_repeat_with_the_same_key_moves_the_money_once(self, agent: Client,
                                                             customer: Client) -> None:
        body = {"customer": customer.user["phone"], "amount": 1_000, "currency": "USD"}
        first = ok(agent.post("/v1/agent/cash-ins", body, key="till-1"), 201)
        assert ok(agent.post("/v1/agent/cash-ins", body, key="till-1"), 201) == first
        refused(agent.post("/v1/agent/cash-ins", {**body, "amount": 2_000}, key="till-1"),
                409, "idempotency_conflict")
        assert wallet(customer)["balance"] == 51_000

    def test_refusals(self, server, admin: Client, agent: Client, customer: Client) -> None:  # type: ignore[no-untyped-def]
        """No float, a frozen agent, an unknown customer, itself: nothing moves."""
        body = {"customer": customer.user["email"], "amount": 500_001, "currency": "USD"}
        refused(agent.post("/v1/agent/cash-ins", body), 422, "insufficient_funds")
        refused(agent.post("/v1/agent/cash-ins", {**body, "customer": "nobody@example.com"}),
                404, "not_found")
        refused(agent.post("/v1/agent/cash-ins", {**body, "customer": agent.user["email"],
                                                  "amount": 1}), 422, "validation_error")
        ok(admin.post(f"/v1/admin/users/{agent.user['id']}/freeze"))
        refused(agent.post("/v1/agent/cash-ins", {**body, "amount": 1}), 423, "account_frozen")
        assert (wallet(agent)["balance"], wallet(customer)["balance"]) == (500_000, 50_000)


class TestCashOut:
    def test_held_until_the_agent_enters_the_code_then_paid_with_commission(
            self, agent: Client, customer: Client) -> None:
        made = ok(cash_out(customer, agent, 20_000), 201)
        assert (made["status"], made["agent_id"], made["attempts_left"]) == (
            "pending", agent.user["id"], 3)
        assert len(made["code"]) == 10 and made["code"].isdigit()
        assert wallet(customer) | {"id": None} == {
            "id": None, "currency": "USD", "balance": 50_000, "available": 29_800,
            "held": 20_200, "frozen": False}
        seen = ok(customer.get(f"/v1/cash-outs/{made['id']}"))
        assert "code" not in seen and seen["status"] == "pending"

        paid = ok(agent.post(f"/v1/agent/cash-outs/{made['code']}/confirm"))
        assert (paid["id"], paid["status"]) == (made["id"], "succeeded")
        # 1 % fee to GoPay, 0.5 % + 10 commission to the agent.
        assert (wallet(customer)["balance"], wallet(customer)["held"]) == (29_800, 0)
        assert wallet(agent)["balance"] == 500_000 + 20_000 + 110
        reference = f"agent {agent.user['id']}"
        customer_lines = sorted((h["type"], h["amount"], h["counterparty"], h["reference"])
                                for h in customer.history() if h["id"] == made["id"])
        assert customer_lines == [("cash_out", 20_000, agent.user["wallet_id"], reference),
                                  ("fee", 200, "fees", reference)]
        agent_lines = sorted((h["type"], h["direction"], h["amount"], h["counterparty"])
                             for h in agent.history() if h["id"] == made["id"])
        assert agent_lines == [("cash_out", "credit", 20_000, customer.user["wallet_id"]),
                               ("commission", "credit", 110, "fees")]
        assert ok(agent.get(f"/v1/cash-outs/{made['id']}"))["status"] == "succeeded"

    def test_a_code_works_once(self, agent: Client, customer: Client) -> None:
        code = ok(cash_out(customer, agent, 1_000), 201)["code"]
        ok(agent.post(f"/v1/agent/cash-outs/{code}/confirm"))
        refused(agent.post(f"/v1/agent/cash-outs/{code}/confirm"), 409, "invalid_state")
        assert wallet(agent)["balance"] == 500_000 + 1_000 + 15

    def test_wrong_codes_count_and_the_last_one_releases_the_money(self, agent: Client,
                                                                   customer: Client) -> None:
        made = ok(cash_out(customer, agent, 5_000), 201)
        answers = [agent.post(f"/v1/agent/cash-outs/{wrong(made['code'])}/confirm")
                   for _ in range(3)]
        assert [refused(a, 422, "wrong_code")["attempts_left"] for a in answers] == [2, 1, 0]
        assert "cancelled" in answers[-1].json()["detail"]
        refused(agent.post(f"/v1/agent/cash-outs/{made['code']}/confirm"), 409, "invalid_state")
        seen = ok(customer.get(f"/v1/cash-outs/{made['id']}"))
        assert (seen["status"], seen["failure_reason"], seen["attempts_left"]) == (
            "cancelled", "too_many_wrong_codes", 0)
        assert (wallet(customer)["balance"], wallet(customer)["held"]) == (50_000, 0)
        assert wallet(agent)["balance"] == 500_000

    def test_an_unused_code_expires_and_releases_the_money_by_itself(self, agent: Client,
                                                                     customer: Client) -> None:
        """Nobody asks: the scheduler ends it, the customer has the money back, the code is dead."""
        made = ok(cash_out(customer, agent, 5_000), 201)
        assert wallet(customer)["held"] == 5_050
        eventually(lambda: customer.get(f"/v1/cash-outs/{made['id']}").json()["status"] == "expired",
                   seconds=CODE_SECONDS + 20)
        assert (wallet(customer)["balance"], wallet(customer)["held"]) == (50_000, 0)
        refused(agent.post(f"/v1/agent/cash-outs/{made['code']}/confirm"), 409, "invalid_state")
        assert wallet(agent)["balance"] == 500_000

    def test_the_code_is_only_good_at_the_chosen_agent(self, server, agent: Client,  # type: ignore[no-untyped-def]
                                                       customer: Client) -> None:
        rival = register(server.url, kind="agent")
        made = ok(cash_out(customer, agent, 1_000), 201)
        refused(rival.post(f"/v1/agent/cash-outs/{made['code']}/confirm"), 404, "not_found")
        assert ok(customer.get(f"/v1/cash-outs/{made['id']}"))["attempts_left"] == 3
        ok(agent.post(f"/v1/agent/cash-outs/{made['code']}/confirm"))

    def test_repeats_with_the_same_key_answer_the_same(self, agent: Client,
                                                       customer: Client) -> None:
        """A lost answer is asked again: the same cash-out and code; the same confirmation."""
        first = ok(cash_out(customer, agent, 2_000, key="atm-1"), 201)
        assert ok(cash_out(customer, agent, 2_000, key="atm-1"), 201) == first
        refused(cash_out(customer, agent, 3_000, key="atm-1"), 409, "idempotency_conflict")
        assert wallet(customer)["held"] == 2_020
        path = f"/v1/agent/cash-outs/{first['code']}/confirm"
        paid = ok(agent.post(path, key="confirm-1"))
        assert ok(agent.post(path, key="confirm-1")) == paid
        assert wallet(agent)["balance"] == 500_000 + 2_000 + 20

    def test_refusals(self, server, admin: Client, agent: Client, customer: Client) -> None:  # type: ignore[no-untyped-def]
        """Not enough money, past the tier's limit, no such agent, a frozen wallet."""
        refused(cash_out(customer, agent, 50_001), 422, "insufficient_funds")
        fund(admin, customer.user["wallet_id"], 100_000)
        refused(cash_out(customer, agent, 100_001), 422, "limit_exceeded")
        person = register(server.url)
        refused(customer.post("/v1/cash-outs", {"agent_id": person.user["id"], "amount": 100,
                                                "currency": "USD"}), 404, "not_found")
        made = ok(cash_out(customer, agent, 1_000), 201)
        ok(admin.post(f"/v1/admin/users/{customer.user['id']}/freeze"))
        refused(cash_out(customer, agent, 100), 423, "account_frozen")
        # Frozen after asking: the agent must not hand the cash over.
        refused(agent.post(f"/v1/agent/cash-outs/{made['code']}/confirm"), 423, "account_frozen")
        assert wallet(agent)["balance"] == 500_000
        refused(agent.post("/v1/agent/cash-outs/12345/confirm"), 422, "validation_error")

    def test_the_customer_calls_it_off(self, agent: Client, customer: Client) -> None:
        made = ok(cash_out(customer, agent, 4_000), 201)
        cancelled = ok(customer.post(f"/v1/cash-outs/{made['id']}/cancel"))
        assert (cancelled["status"], cancelled["failure_reason"]) == ("cancelled",
                                                                     "cancelled_by_customer")
        assert wallet(customer)["held"] == 0
        refused(agent.post(f"/v1/agent/cash-outs/{made['code']}/confirm"), 409, "invalid_state")


class TestRaces:
    def test_two_agents_racing_for_one_code_pay_once(self, server, agent: Client,  # type: ignore[no-untyped-def]
                                                     customer: Client) -> None:
        """The chosen agent's two tills and a rival agent enter the code at once: one pays."""
        till = register(server.url, kind="agent")
        second_till = Client(server.url, agent.http.headers["Authorization"].split()[1])
        made = ok(cash_out(customer, agent, 3_000), 201)
        path = f"/v1/agent/cash-outs/{made['code']}/confirm"
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda client: client.post(path),
                                    [agent, second_till, till] * 2))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 404, 404, 409, 409, 409], [a.text for a in answers]
        assert wallet(agent)["balance"] == 500_000 + 3_000 + 25
        assert (wallet(customer)["balance"], wallet(customer)["held"]) == (50_000 - 3_030, 0)
