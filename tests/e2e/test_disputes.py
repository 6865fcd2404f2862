"""Disputes over HTTP: the payer claims a payment back, the payee's money is held, staff decide
once; a card's chargeback opens one by itself, and the day's settlement file still matches."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from threading import Barrier
from typing import Any

import httpx
import pytest

from gopay.aggregates.ledger import SystemAccount
from tests.e2e.test_merchant_webhooks import Receiver, eventually
from tests.e2e.test_topups_and_payouts import Deployment, top_up
from tests.merchants import api_key, merchant, pay, qr_code, refund
from tests.support import Client, fund, register, staff


@pytest.fixture(scope="module")
def gopay(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """GoPay with the PSP simulator beside it (for chargebacks), webhooks to loopback allowed."""
    deployment = Deployment(postgres_server, tmp_path_factory.mktemp("disputes"),
                            GOPAY_WEBHOOK_ALLOW_PRIVATE="true").start()
    yield deployment
    deployment.stop()


@pytest.fixture(scope="module")
def support(gopay: Deployment) -> Client:
    return staff(gopay.server.url, gopay.server.env, "support")


def paid(gopay: Deployment, shop: Client, amount: int = 1_000) -> tuple[Client, dict[str, Any]]:
    """A person who paid `shop` `amount` by QR code out of 5,000: the person and the payment."""
    payer = register(gopay.server.url)
    fund(gopay.admin, payer.user["wallet_id"], 5_000)
    answer = pay(payer, qr_code(shop, amount, reference="order 17"))
    assert answer.status_code == 201, answer.text
    return payer, answer.json()


def dispute(payer: Client, transaction_id: str, amount: int | None = None,
            reason: str = "never delivered") -> httpx.Response:
    body: dict[str, Any] = {"transaction_id": transaction_id, "reason": reason}
    if amount is not None:
        body["amount"] = amount
    return payer.post("/v1/disputes", body)


def resolve(staff_member: Client, dispute_id: str, outcome: str) -> httpx.Response:
    return staff_member.post(f"/v1/admin/disputes/{dispute_id}/resolve", {"outcome": outcome})


def wallet(client: Client) -> dict[str, Any]:
    shown: dict[str, Any] = client.get("/v1/wallet").json()
    return shown


def problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    if code is not None:
        assert body["code"] == code
    return body


class TestDecidedForTheCustomer:
    def test_open_held_answered_decided_refunded_once(self, gopay: Deployment,
                                                      support: Client) -> None:
        """The payee hears of it (list and webhook), answers; staff decide; a second decision
        is 409 and moves nothing."""
        receiver = Receiver().start()
        try:
            shop = merchant(gopay.server.url)
            hook = shop.post("/v1/merchant/webhook-endpoints",
                             {"url": receiver.url("/hooks"), "events": ["dispute.opened"]})
            assert hook.status_code == 201, hook.text
            ada, payment = paid(gopay, shop)
            opened = dispute(ada, payment["id"], 400)
            assert opened.status_code == 201, opened.text
            body = opened.json()
            assert {k: body[k] for k in ("status", "amount", "transaction_id", "held")} == {
                "status": "open", "amount": 400, "transaction_id": payment["id"], "held": 400}
            assert (wallet(shop)["balance"], wallet(shop)["held"]) == (1_000, 400)
            [mine] = ada.get("/v1/disputes").json()["data"]
            assert (mine["id"], mine["status"]) == (body["id"], "open")
            server_side, _ = api_key(shop)
            for payee in (shop, server_side):
                [theirs] = payee.get("/v1/merchant/disputes").json()["data"]
                assert theirs["id"] == body["id"]
            [event] = eventually(lambda: receiver.at("/hooks"))
            assert (event.event["type"], event.event["data"]["id"],
                    event.event["data"]["amount"]) == ("dispute.opened", body["id"], 400)
            answered = server_side.post(f"/v1/disputes/{body['id']}/evidence",
                                        {"text": "delivered on the 3rd, signed for"})
            assert answered.status_code == 201, answered.text
            assert [item["text"] for item in answered.json()["evidence"]] == [
                "delivered on the 3rd, signed for"]
            assert [row["id"] for row in support.get(
                "/v1/admin/disputes", params={"status": "open"}).json()["data"]] == [body["id"]]

            decided = resolve(support, body["id"], "customer")
            assert decided.status_code == 200, decided.text
            assert (decided.json()["status"], decided.json()["outcome"]) == ("won", "customer")
            assert (ada.balance(), wallet(shop)["balance"], wallet(shop)["held"]) == (
                4_400, 600, 0)
            problem(resolve(support, body["id"], "customer"), 409, "invalid_state")
            problem(resolve(gopay.admin, body["id"], "merchant"), 409, "invalid_state")
            assert (ada.balance(), wallet(shop)["balance"], wallet(shop)["held"]) == (
                4_400, 600, 0)
            refunds = [line for line in ada.history() if line["type"] == "refund"]
            assert [(line["direction"], line["amount"]) for line in refunds] == [("credit", 400)]
            problem(server_side.post(f"/v1/disputes/{body['id']}/evidence", {"text": "late"}),
                    409, "invalid_state")
            assert support.get("/v1/admin/disputes", params={"status": "open"}).json()[
                "data"] == []
            auditor = staff(gopay.server.url, gopay.server.env, "auditor")
            steps = auditor.get("/v1/audit/events", params={"aggregate_id": body["id"]}).json()
            assert [step["type"] for step in steps["data"]] == [
                "Dispute.Opened", "Dispute.EvidenceAdded", "Dispute.Decided"]
        finally:
            receiver.stop()


class TestDecidedForTheMerchant:
    def test_the_hold_is_released_once(self, gopay: Deployment, support: Client) -> None:
        """Lost: the payee's money is all its own again, the payment refundable again."""
        shop = merchant(gopay.server.url)
        ada, payment = paid(gopay, shop)
        body = dispute(ada, payment["id"]).json()
        assert (body["amount"], wallet(shop)["available"]) == (1_000, 0)
        decided = resolve(support, body["id"], "merchant")
        assert decided.status_code == 200, decided.text
        assert (decided.json()["status"], decided.json()["outcome"]) == ("lost", "merchant")
        problem(resolve(support, body["id"], "merchant"), 409, "invalid_state")
        assert (ada.balance(), wallet(shop)["balance"], wallet(shop)["held"]) == (4_000, 1_000, 0)
        assert ada.get(f"/v1/disputes/{body['id']}").json()["status"] == "lost"
        assert refund(shop, payment["id"]).status_code == 201

    def test_two_decisions_at_once_have_one_effect(self, gopay: Deployment,
                                                   support: Client) -> None:
        """A support agent and an admin decide differently at the same moment: one wins, the
        other is 409, and the money moved as the winner said, once."""
        shop = merchant(gopay.server.url)
        ada, payment = paid(gopay, shop)
        body = dispute(ada, payment["id"]).json()
        start = Barrier(2)

        def decide(by: Client, outcome: str) -> httpx.Response:
            start.wait()
            return resolve(by, body["id"], outcome)

        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(decide, (support, gopay.admin), ("merchant", "customer")))
        assert sorted(a.status_code for a in answers) == [200, 409]
        [won] = [a.json() for a in answers if a.status_code == 200]
        held = wallet(shop)
        assert held["held"] == 0
        if won["outcome"] == "merchant":
            assert (won["status"], ada.balance(), held["balance"]) == ("lost", 4_000, 1_000)
        else:
            assert (won["status"], ada.balance(), held["balance"]) == ("won", 5_000, 0)


class TestRefundsAndDisputesTogether:
    def test_thirty_refunds_and_disputes_at_once_never_pass_the_payment(
            self, gopay: Deployment) -> None:
        """15 refunds and 15 disputes of 50 racing on a 1,000 payment (of which 300 was
        refunded): exactly 14 get through, the rest are 409, and together they claim 1,000."""
        shop = merchant(gopay.server.url)
        ada, payment = paid(gopay, shop)
        assert refund(shop, payment["id"], 300).status_code == 201
        server_side, _ = api_key(shop)
        start = Barrier(30)

        def attempt(n: int) -> tuple[str, httpx.Response]:
            start.wait()
            if n % 2:
                return "refund", refund(server_side if n % 4 == 1 else shop, payment["id"], 50)
            return "dispute", dispute(ada, payment["id"], 50)

        with ThreadPoolExecutor(max_workers=30) as pool:
            answers = list(pool.map(attempt, range(30)))
        assert sorted(a.status_code for _, a in answers) == [201] * 14 + [409] * 16
        for _, answer in answers:
            if answer.status_code == 409:
                problem(answer, 409, "invalid_state")
        refunded = sum(50 for kind, a in answers if kind == "refund" and a.status_code == 201)
        disputed = sum(50 for kind, a in answers if kind == "dispute" and a.status_code == 201)
        assert refunded + disputed == 700
        assert (ada.balance(), wallet(shop)["balance"], wallet(shop)["held"]) == (
            4_000 + 300 + refunded, 700 - refunded, disputed)
        shown = shop.get(f"/v1/merchant/payments/{payment['id']}").json()
        assert (shown["refunded"], shown["disputed"], shown["refundable"]) == (
            300 + refunded, disputed, 0)
        problem(dispute(ada, payment["id"]), 409, "invalid_state")  # nothing left to claim
        problem(refund(shop, payment["id"], 1), 409, "invalid_state")


class TestAPayeeWhoSpentTheMoney:
    def test_the_customer_still_gets_all_of_it(self, gopay: Deployment, support: Client) -> None:
        """Bob spent what Ada sent: his wallet holds what is left, the rest is advanced from
        receivables when Ada wins."""
        ada, bob, carol = (register(gopay.server.url) for _ in range(3))
        fund(gopay.admin, ada.user["wallet_id"], 5_000)
        sent = ada.post("/v1/transfers", {"recipient": bob.user["email"], "amount": 2_000,
                                          "currency": "USD"})
        assert sent.status_code == 201, sent.text
        spent = bob.post("/v1/transfers", {"recipient": carol.user["email"], "amount": 1_500,
                                           "currency": "USD"})
        assert spent.status_code == 201, spent.text
        receivables = gopay.ledger(SystemAccount.RECEIVABLES)
        body = dispute(ada, sent.json()["id"]).json()
        assert (body["amount"], body["held"], wallet(bob)["held"]) == (2_000, 500, 500)
        problem(bob.get("/v1/merchant/disputes"), 403)  # a person is no merchant
        assert bob.get(f"/v1/disputes/{body['id']}").json()["held"] == 500
        assert resolve(support, body["id"], "customer").status_code == 200
        assert (ada.balance(), bob.balance()) == (5_000, 0)
        assert gopay.ledger(SystemAccount.RECEIVABLES) - receivables == -1_500


class TestWhoMayDispute:
    def test_only_the_payer(self, gopay: Deployment) -> None:
        """The payee and strangers are told the payment does not exist; so is a top-up."""
        shop = merchant(gopay.server.url)
        ada, payment = paid(gopay, shop)
        eve = register(gopay.server.url)
        for someone in (eve, shop):
            problem(dispute(someone, payment["id"]), 404, "not_found")
        problem(dispute(ada, str(uuid.uuid4())), 404, "not_found")
        body = dispute(ada, payment["id"], 100).json()
        problem(eve.get(f"/v1/disputes/{body['id']}"), 404)
        problem(eve.post(f"/v1/disputes/{body['id']}/evidence", {"text": "mine"}), 404)
        problem(ada.post(f"/v1/disputes/{body['id']}/evidence", {"text": "mine"}), 404)
        problem(resolve(ada, body["id"], "customer"), 403)
        assert eve.get("/v1/disputes").json()["data"] == []


class TestBadInput:
    @pytest.mark.parametrize("body", [
        {}, {"reason": "x"}, {"transaction_id": "not-a-uuid", "reason": "x"},
        {"transaction_id": str(uuid.uuid4())}, {"transaction_id": str(uuid.uuid4()), "reason": " "},
        {"transaction_id": str(uuid.uuid4()), "reason": "x", "amount": 0},
        {"transaction_id": str(uuid.uuid4()), "reason": "x", "amount": -5},
        {"transaction_id": str(uuid.uuid4()), "reason": "x", "amount": "10"},
        {"transaction_id": str(uuid.uuid4()), "reason": "x", "amount": 10 ** 30},
        {"transaction_id": str(uuid.uuid4()), "reason": "x" * 2_001},
        {"transaction_id": str(uuid.uuid4()), "reason": "x", "extra": 1}, [], "text", None,
    ])
    def test_a_bad_dispute_is_a_422_problem(self, gopay: Deployment, body: Any) -> None:
        person = register(gopay.server.url)
        problem(person.http.post("/v1/disputes", json=body), 422)

    def test_bad_decisions_evidence_and_ids(self, gopay: Deployment, support: Client) -> None:
        shop = merchant(gopay.server.url)
        ada, payment = paid(gopay, shop)
        body = dispute(ada, payment["id"]).json()
        for outcome in ({"outcome": "bogus"}, {}, {"outcome": None}, ["customer"]):
            problem(support.http.post(f"/v1/admin/disputes/{body['id']}/resolve",
                                      json=outcome), 422)
        problem(resolve(support, "not-an-id", "customer"), 404)
        problem(resolve(support, str(uuid.uuid4()), "customer"), 404)
        for text in ({"text": ""}, {"text": "x" * 10_001}, {}, {"text": 5}):
            problem(shop.http.post(f"/v1/disputes/{body['id']}/evidence", json=text), 422)
        problem(shop.http.post(f"/v1/disputes/{body['id']}/evidence", content=b"{not json",
                               headers={"Content-Type": "application/json"}), 422)
        problem(support.get("/v1/admin/disputes", params={"status": "maybe"}), 422)
        problem(ada.get("/v1/admin/disputes"), 403)
        problem(httpx.get(f"{gopay.server.url}/v1/disputes"), 401)


class TestChargebacks:
    def test_a_chargeback_opens_a_dispute_and_the_day_s_file_still_matches(
            self, gopay: Deployment) -> None:
        """A top-up with the disputed card, 1,000 of it spent at once: the PSP's chargeback
        takes back what is left and books the rest to receivables, the customer's list shows
        a dispute of the top-up decided for the card holder, and reconciling the day's
        settlement file (its chargeback line with the rest) finds nothing wrong."""
        person, card = gopay.customer("disputed")
        friend = register(gopay.server.url)
        receivables = gopay.ledger(SystemAccount.RECEIVABLES)
        topup = top_up(person, card, 3_000).json()
        assert topup["status"] == "succeeded", topup
        sent = person.post("/v1/transfers", {"recipient": friend.user["email"], "amount": 1_000,
                                             "currency": "USD"})
        assert sent.status_code == 201, sent.text
        disputes = eventually(lambda: person.get("/v1/disputes").json()["data"])
        [chargeback] = disputes
        assert {k: chargeback[k] for k in ("kind", "status", "outcome", "transaction_id",
                                           "amount", "held")} == {
            "kind": "chargeback", "status": "won", "outcome": "customer",
            "transaction_id": topup["id"], "amount": 3_000, "held": 2_000}
        assert person.balance() == 0
        assert gopay.ledger(SystemAccount.RECEIVABLES) - receivables == -1_000
        [line] = [line for line in gopay.lines_for(topup["id"]) if line["type"] == "chargeback"]
        assert int(line["amount"]) == 3_000

        finance = staff(gopay.server.url, gopay.server.env, "finance")
        day = datetime.now(UTC).date().isoformat()
        file = httpx.get(f"{gopay.simulator.url}/sim/settlements/{day}.csv", timeout=10).content
        run = finance.http.post("/v1/reconciliation/runs",
                                files={"file": ("settlement.csv", file, "text/csv")})
        assert run.status_code == 201, run.text
        summary = run.json()["summary"]
        assert summary["matched"] == len(file.decode().strip().splitlines()) - 1 >= 2
        assert {k: v for k, v in summary.items() if k != "matched"} == dict.fromkeys(
            ("missing_in_ledger", "missing_in_psp", "amount_mismatch", "status_mismatch",
             "fee_mismatch", "duplicates"), 0)
