"""Money in and out through the PSP simulator, as its own process, over HTTP both ways."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest

from gopay.aggregates.ledger import SystemAccount
from gopay.psp.webhooks import HEADER, sign
from tests.conftest import new_database
from tests.e2e.test_fast_lane import taken
from tests.support import (
    PSP_WEBHOOK_SECRET,
    Client,
    GoPayServer,
    PspSimulator,
    fund,
    gopay_env,
    psp_env,
    register,
    staff,
)

T = TypeVar("T")
CARDS = {"ok": "4242424242424242", "declined": "4000000000000002",
         "no_funds": "4000000000009995", "disputed": "4000000000000259"}
IBAN, CLOSED_IBAN = "DE89370400440532013000", "GB33BUKB20201555555555"


def eventually(check: Callable[[], T], timeout: float = 20.0) -> T:
    """The first truthy answer of `check`, asked again until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


class Deployment:
    """GoPay and the simulator, each its own process, each calling the other over HTTP."""

    def __init__(self, postgres_server: Any, tmp: Path, **settings: str) -> None:
        self.database_url = new_database(postgres_server)
        self.server = GoPayServer.create({}, tmp / "serve.log")
        webhooks = f"{self.server.url}/v1/psp/webhooks"
        sim_env = psp_env(tmp / "sim", webhooks, GOPAY_PSP_SIM_DISPUTE_DELAY="1")
        self.simulator = PspSimulator.create(sim_env, tmp / "sim.log", "--seed", "7")
        self.server.env = {**gopay_env(self.database_url, tmp / "var"),
                           **psp_env(tmp / "var", webhooks), "GOPAY_PSP_URL": self.simulator.url,
                           "GOPAY_PSP_TIMEOUT": "2", "GOPAY_PSP_CALL_GRACE": "1",
                           "GOPAY_PSP_RETRY_MAX_DELAY": "1", **settings}

    def start(self) -> Deployment:
        self.simulator.start()
        self.server.start()
        self.admin = staff(self.server.url, self.server.env)
        return self

    def stop(self) -> None:
        self.server.stop()
        self.simulator.stop()

    def faults(self, **faults: float) -> None:
        response = httpx.post(f"{self.simulator.url}/sim/faults", json=faults, timeout=10)
        assert response.status_code == 200, response.text

    def settlement(self) -> list[dict[str, str]]:
        day = datetime.now(UTC).date().isoformat()
        text = httpx.get(f"{self.simulator.url}/sim/settlements/{day}.csv", timeout=10).text
        return list(csv.DictReader(io.StringIO(text)))

    def lines_for(self, order_id: str) -> list[dict[str, str]]:
        return [line for line in self.settlement() if line["merchant_reference"] == order_id]

    def ledger(self, account: SystemAccount, currency: str = "USD") -> int:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute("SELECT balance FROM ledger_accounts WHERE account_id = %s",
                               (account.account_id(currency),)).fetchone()
        return int(row[0]) if row else 0

    def customer(self, card: str | None = "ok", iban: str | None = None) -> tuple[Client, str]:
        """A signed-in person with a saved card (or bank account): the client and the method's id."""
        person = register(self.server.url)
        body: dict[str, Any] = (
            {"type": "card", "card": {"number": CARDS[card], "exp_month": 12, "exp_year": 2031,
                                      "cvc": "123", "holder_name": "Ada Lovelace"}}
            if card else {"type": "bank_account",
                          "bank_account": {"iban": iban or IBAN, "holder_name": "Ada Lovelace"}})
        saved = person.post("/v1/payment-methods", body)
        assert saved.status_code == 201, saved.text
        return person, saved.json()["id"]


@pytest.fixture(scope="module")
def gopay(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(postgres_server, tmp_path_factory.mktemp("psp-flows")).start()
    yield deployment
    deployment.stop()


def top_up(person: Client, method: str, amount: int, key: str | None = None) -> httpx.Response:
    return person.post("/v1/topups", {"amount": amount, "currency": "USD",
                                      "payment_method_id": method}, key=key)


def pay_out(person: Client, method: str, amount: int, key: str | None = None) -> httpx.Response:
    return person.post("/v1/payouts", {"amount": amount, "currency": "USD",
                                       "payment_method_id": method}, key=key)


def settled(person: Client, kind: str, order_id: str) -> dict[str, Any]:
    """The order once it is no longer pending (or as it is after the wait)."""
    def answer() -> dict[str, Any] | None:
        body = person.get(f"/v1/{kind}/{order_id}").json()
        return body if body["status"] != "pending" else None
    return eventually(answer) or person.get(f"/v1/{kind}/{order_id}").json()


class TestTopUps:
    def test_a_good_card_credits_the_wallet_once(self, gopay: Deployment) -> None:
        """201 succeeded: the wallet holds the amount, its history a topup line, the PSP one charge."""
        person, card = gopay.customer()
        response = top_up(person, card, 5_000)
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["status"], body["amount"], body["failure_reason"]) == ("succeeded", 5_000, None)
        assert body["psp_reference"].startswith("ch_")
        assert person.balance() == 5_000
        [line] = person.history()
        assert (line["type"], line["direction"], line["amount"], line["balance_after"]) == (
            "topup", "credit", 5_000, 5_000)
        [charge] = gopay.lines_for(body["id"])
        assert (charge["type"], charge["amount"], charge["status"]) == ("charge", "5000", "settled")
        assert person.get(f"/v1/topups/{body['id']}").json()["psp_reference"] == body["psp_reference"]

    @pytest.mark.parametrize(("card", "reason"), [("declined", "card_declined"),
                                                   ("no_funds", "insufficient_funds")])
    def test_a_refused_card_fails_and_credits_nothing(self, gopay: Deployment, card: str,
                                                      reason: str) -> None:
        person, method = gopay.customer(card)
        response = top_up(person, method, 2_500)
        assert response.status_code == 201, response.text
        assert (response.json()["status"], response.json()["failure_reason"]) == ("failed", reason)
        assert person.balance() == 0 and person.history() == []

    def test_a_bank_account_can_be_debited(self, gopay: Deployment) -> None:
        person, account = gopay.customer(card=None)
        assert top_up(person, account, 1_000).json()["status"] == "succeeded"
        assert person.balance() == 1_000

    def test_the_pay_button_clicked_twice_charges_once(self, gopay: Deployment) -> None:
        """The same Idempotency-Key sent ten times at once: one order, one charge, one credit."""
        person, card = gopay.customer()
        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(lambda _: top_up(person, card, 700, key="pay-button"), range(10)))
        ids = {a.json()["id"] for a in answers if a.status_code in (201, 202)}
        assert len(ids) == 1, [a.text for a in answers]
        [order_id] = ids
        assert settled(person, "topups", order_id)["status"] == "succeeded"
        assert person.balance() == 700
        assert len(gopay.lines_for(order_id)) == 1

    def test_an_answer_lost_on_the_way_still_charges_and_credits_once(self, gopay: Deployment) -> None:
        """The PSP charged but its answer never came: the client retries with its key, GoPay
        learns the outcome from the webhook or by asking, and there is one charge, one credit."""
        person, card = gopay.customer()
        gopay.faults(drop_response=1.0)
        try:
            first = top_up(person, card, 1_200, key="lost-answer")
        finally:
            gopay.faults()
        assert first.status_code == 202, first.text
        assert first.json()["status"] == "pending"
        again = top_up(person, card, 1_200, key="lost-answer")
        assert again.json()["id"] == first.json()["id"]
        assert settled(person, "topups", first.json()["id"])["status"] == "succeeded"
        assert person.balance() == 1_200
        assert len(gopay.lines_for(first.json()["id"])) == 1

    def test_the_webhook_alone_settles_a_top_up_whose_answer_was_lost(
            self, gopay: Deployment) -> None:
        """The PSP's own news (its `data` the charge, as the PSP shows it) settles the pending
        top-up: credited once, and nothing dead-lettered on the way."""
        person, card = gopay.customer()
        gopay.faults(drop_response=1.0)
        try:
            first = top_up(person, card, 1_300)
        finally:
            gopay.faults()
        assert first.status_code == 202, first.text
        assert settled(person, "topups", first.json()["id"])["status"] == "succeeded"
        assert person.balance() == 1_300
        letters = gopay.admin.get("/v1/admin/dead-letters").json()["data"]
        assert [x for x in letters if x["order_id"] == first.json()["id"]] == []

    def test_a_late_decline_for_insufficient_funds_answers_the_order_again(
            self, gopay: Deployment) -> None:
        """No answer at first (202); the PSP then says the card had no funds. The same key
        again answers the failed top-up, not a 422 as if the wallet lacked money."""
        person, card = gopay.customer("no_funds")
        gopay.faults(drop_response=1.0)
        try:
            first = top_up(person, card, 800, key="late-decline")
        finally:
            gopay.faults()
        assert first.status_code == 202, first.text
        assert settled(person, "topups", first.json()["id"])["status"] == "failed"
        again = top_up(person, card, 800, key="late-decline")
        assert again.status_code == 201, again.text
        assert (again.json()["id"], again.json()["status"], again.json()["failure_reason"]) == (
            first.json()["id"], "failed", "insufficient_funds")

    def test_a_chargeback_takes_the_money_back_and_books_what_is_missing(
            self, gopay: Deployment) -> None:
        """The disputed card succeeds, then is charged back: the wallet gives back what it has
        and the rest is owed to GoPay (receivables), so the books still balance."""
        person, card = gopay.customer("disputed")
        friend = register(gopay.server.url)
        receivables = gopay.ledger(SystemAccount.RECEIVABLES)
        assert top_up(person, card, 3_000).json()["status"] == "succeeded"
        sent = person.post("/v1/transfers", {"recipient": friend.user["email"], "amount": 1_000,
                                             "currency": "USD"})
        assert sent.status_code == 201, sent.text
        assert eventually(lambda: person.balance() == 0, timeout=30)
        assert gopay.ledger(SystemAccount.RECEIVABLES) - receivables == -1_000
        chargeback = person.history()[0]
        assert (chargeback["type"], chargeback["direction"], chargeback["amount"]) == (
            "topup", "debit", 2_000)


class TestABusyPsp:
    """A real PSP turns requests away when they come too fast (429 with Retry-After): nothing
    was done, so nothing may be failed, and nothing may be done twice when it is tried again."""

    def call_task(self, gopay: Deployment, order_id: str) -> dict[str, Any]:
        """The order's call as the tasks' read model shows it (nothing until it does)."""
        with psycopg.connect(gopay.database_url) as conn:
            row = conn.execute(
                "SELECT attempts, due_at, last_error, now() AS now FROM psp_tasks "
                "WHERE order_id = %s AND kind = 'call'", (order_id,)).fetchone()
        return dict(zip(("attempts", "due_at", "last_error", "now"), row or (0, None, "", None),
                        strict=True))

    def test_a_charge_turned_away_stays_pending_and_is_made_once_when_asked(
            self, gopay: Deployment) -> None:
        """429 on the charge: 202 pending, not failed; the next attempt waits the Retry-After
        (longer than the retry policy's own wait), then charges once and credits once."""
        person, card = gopay.customer()
        gopay.faults(rate_limited=1.0, rate_limit_retry_after=4)
        try:
            response = top_up(person, card, 900, key="busy-charge")
            assert response.status_code == 202, response.text
            assert (response.json()["status"], response.json()["failure_reason"]) == (
                "pending", None)
            task = eventually(lambda: (t := self.call_task(gopay, response.json()["id"]))
                              ["attempts"] and t)
            assert "busy" in task["last_error"]
            assert (task["due_at"] - task["now"]).total_seconds() > 2.5  # the policy says 1 s
        finally:
            gopay.faults()
        order = settled(person, "topups", response.json()["id"])
        assert order["status"] == "succeeded"
        assert person.balance() == 900
        assert len(gopay.lines_for(order["id"])) == 1

    def test_a_status_query_turned_away_never_fails_a_charge_that_was_made(
            self, gopay: Deployment) -> None:
        """The PSP charged, but neither its answer nor its webhook came; then it turns the
        status queries away. The top-up stays pending (it was charged: failing it would take
        the customer's money and credit nothing) until an answer comes, then is credited once."""
        person, card = gopay.customer()
        gopay.faults(drop_response=1.0, drop_webhook=1.0)
        try:
            response = top_up(person, card, 1_100, key="busy-status")
        finally:
            gopay.faults(rate_limited=1.0)
        try:
            assert response.status_code == 202, response.text
            order_id = response.json()["id"]
            assert len(gopay.lines_for(order_id)) == 1  # the PSP did charge

            def status() -> str:
                return str(person.get(f"/v1/topups/{order_id}").json()["status"])
            assert eventually(lambda: self.call_task(gopay, order_id)["attempts"] >= 2
                              or status() != "pending")
            assert status() == "pending"
            assert person.balance() == 0
        finally:
            gopay.faults()
        assert settled(person, "topups", order_id)["status"] == "succeeded"
        assert person.balance() == 1_100
        assert len(gopay.lines_for(order_id)) == 1


class TestTheFastLane:
    """A top-up the fast lane takes answers as the route does (reached here with a lower-case
    `bearer`, which the lane leaves to it), with the same effect."""

    @pytest.mark.parametrize(("card", "faults", "status", "outcome"), [
        ("ok", {}, 201, "succeeded"), ("declined", {}, 201, "failed"),
        ("ok", {"drop_response": 1.0}, 202, "pending")])
    def test_the_same_answer_both_ways(self, gopay: Deployment, card: str,
                                       faults: dict[str, float], status: int,
                                       outcome: str) -> None:
        answers = []
        for lane in ("fast_lane", "route"):
            person, method = gopay.customer(card)
            token = person.http.headers["Authorization"].split()[1]
            scheme = "Bearer" if lane == "fast_lane" else "bearer"
            before = taken(gopay.server, "/v1/topups")
            gopay.faults(**faults)
            try:
                answer = person.post("/v1/topups", {"amount": 900, "currency": "USD",
                                                    "payment_method_id": method},
                                     headers={"Authorization": f"{scheme} {token}"})
            finally:
                gopay.faults()
            after = taken(gopay.server, "/v1/topups")
            assert after[lane] - before[lane] == 1 and sum(after.values()) - sum(
                before.values()) == 1
            assert settled(person, "topups", answer.json()["id"])["status"] != "pending"
            answers.append((answer, person))
        (fast, payer), (routed, other) = answers
        assert fast.status_code == routed.status_code == status, (fast.text, routed.text)
        assert fast.headers["content-type"] == routed.headers["content-type"]
        mine, theirs = fast.json(), routed.json()
        varying = ("id", "created_at", "psp_reference", "wallet_id")
        assert {k: v for k, v in mine.items() if k not in varying} == {
            k: v for k, v in theirs.items() if k not in varying}
        assert mine["status"] == outcome
        assert payer.balance() == other.balance() == (0 if card == "declined" else 900)

    @pytest.mark.parametrize(("change", "status"), [
        ({"payment_method_id": str(uuid.uuid4())}, 404), ({"amount": 0}, 422),
        ({"currency": "EUR"}, 422)])
    def test_a_refusal_is_the_route_s(self, gopay: Deployment, change: dict[str, object],
                                      status: int) -> None:
        person, method = gopay.customer()
        answers = []
        for scheme in ("Bearer", "bearer"):
            token = person.http.headers["Authorization"].split()[1]
            answers.append(person.post("/v1/topups", {"amount": 900, "currency": "USD",
                                                      "payment_method_id": method, **change},
                                       headers={"Authorization": f"{scheme} {token}"}))
        fast, routed = answers
        assert fast.status_code == routed.status_code == status, (fast.text, routed.text)
        assert fast.json() == routed.json()
        assert fast.headers["content-type"] == "application/problem+json"
        assert person.balance() == 0


class TestPayouts:
    def test_a_payout_holds_then_pays(self, gopay: Deployment) -> None:
        """Paid: the balance drops by the amount, nothing stays held, the PSP paid once."""
        person, account = gopay.customer(card=None)
        fund(gopay.admin, person.user["wallet_id"], 10_000)
        response = pay_out(person, account, 4_000)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "succeeded"
        wallet = person.get("/v1/wallet").json()
        assert (wallet["balance"], wallet["held"], wallet["available"]) == (6_000, 0, 6_000)
        assert person.history()[0]["type"] == "payout"
        [paid] = gopay.lines_for(body["id"])
        assert (paid["type"], paid["amount"]) == ("payout", "4000")

    def test_a_closed_account_gives_the_money_back(self, gopay: Deployment) -> None:
        person, account = gopay.customer(card=None, iban=CLOSED_IBAN)
        fund(gopay.admin, person.user["wallet_id"], 5_000)
        body = pay_out(person, account, 2_000).json()
        assert (body["status"], body["failure_reason"]) == ("failed", "account_closed")
        wallet = person.get("/v1/wallet").json()
        assert (wallet["balance"], wallet["held"]) == (5_000, 0)

    def test_not_enough_money_holds_nothing(self, gopay: Deployment) -> None:
        person, account = gopay.customer(card=None)
        response = pay_out(person, account, 1)
        assert response.status_code == 422 and response.json()["code"] == "insufficient_funds"
        assert person.get("/v1/wallet").json()["held"] == 0

    def test_a_payout_without_an_answer_is_held_until_the_psp_tells(self, gopay: Deployment) -> None:
        """No answer: 202 and the money held; the webhook (or a status query) settles it."""
        person, account = gopay.customer(card=None)
        fund(gopay.admin, person.user["wallet_id"], 3_000)
        gopay.faults(drop_response=1.0)
        try:
            response = pay_out(person, account, 3_000)
        finally:
            gopay.faults()
        assert response.status_code == 202, response.text
        assert settled(person, "payouts", response.json()["id"])["status"] == "succeeded"
        wallet = person.get("/v1/wallet").json()
        assert (wallet["balance"], wallet["held"]) == (0, 0)

    def test_only_bank_accounts_and_cards_are_paid_out_to(self, gopay: Deployment) -> None:
        person = register(gopay.server.url)
        saved = person.post("/v1/payment-methods", {"type": "crypto", "crypto": {
            "network": "btc", "address": "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"}})
        assert saved.status_code == 201, saved.text
        response = pay_out(person, saved.json()["id"], 100)
        assert response.status_code == 422 and response.json()["code"] == "validation_error"

    def test_someone_elses_method_does_not_exist(self, gopay: Deployment) -> None:
        _, account = gopay.customer(card=None)
        mallory = register(gopay.server.url)
        assert pay_out(mallory, account, 100).status_code == 404
        assert top_up(mallory, account, 100).status_code == 404


class TestWebhooks:
    def post(self, gopay: Deployment, body: bytes, header: str | None) -> httpx.Response:
        headers = {"Content-Type": "application/json", **({HEADER: header} if header else {})}
        return httpx.post(f"{gopay.server.url}/v1/psp/webhooks", content=body, headers=headers,
                          timeout=10)

    def event(self, **data: Any) -> bytes:
        return json.dumps({"id": f"evt_{uuid.uuid4().hex}", "type": data.pop("type"),
                           "created_at": datetime.now(UTC).isoformat(), "data": data}).encode()

    @pytest.mark.parametrize("header", [None, "t=1,v1=zz", "nonsense"])
    def test_a_missing_or_malformed_signature_is_a_400(self, gopay: Deployment,
                                                       header: str | None) -> None:
        response = self.post(gopay, self.event(type="charge.succeeded"), header)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")

    def test_a_stale_or_forged_signature_is_a_400(self, gopay: Deployment) -> None:
        body = self.event(type="charge.succeeded", merchant_reference=str(uuid.uuid4()))
        stale = sign(PSP_WEBHOOK_SECRET, body, int(time.time()) - 600)
        forged = sign("another secret", body)
        for header in (stale, forged):
            assert self.post(gopay, body, header).status_code == 400

    def test_a_tampered_body_is_a_400(self, gopay: Deployment) -> None:
        body = self.event(type="charge.succeeded", amount=100)
        header = sign(PSP_WEBHOOK_SECRET, body)
        assert self.post(gopay, body.replace(b"100", b"999"), header).status_code == 400

    def test_an_unknown_type_is_acknowledged_and_ignored(self, gopay: Deployment) -> None:
        body = self.event(type="customer.birthday", merchant_reference="whoever")
        assert self.post(gopay, body, sign(PSP_WEBHOOK_SECRET, body)).status_code == 200

    def test_the_fast_lane_takes_good_news_and_leaves_the_rest_to_the_route(
            self, gopay: Deployment) -> None:
        """A signed event GoPay acts on is taken by the fast lane and answered as the route
        answers; a type GoPay ignores, a repeated signature header or a bad signature is the
        route's to answer."""
        person, card = gopay.customer()
        order = top_up(person, card, 900).json()
        news = self.event(type="charge.succeeded", merchant_reference=order["id"],
                          psp_reference=order["psp_reference"], amount=900, currency="USD",
                          fee=0, status="succeeded")
        ignored = self.event(type="customer.birthday", merchant_reference="whoever")
        url = f"{gopay.server.url}/v1/psp/webhooks"
        before = taken(gopay.server, "/v1/psp/webhooks")
        fast = self.post(gopay, news, sign(PSP_WEBHOOK_SECRET, news))
        middle = taken(gopay.server, "/v1/psp/webhooks")
        routed = self.post(gopay, ignored, sign(PSP_WEBHOOK_SECRET, ignored))
        twice = httpx.post(url, content=news, timeout=10, headers=[
            ("Content-Type", "application/json"), (HEADER, sign(PSP_WEBHOOK_SECRET, news)),
            (HEADER, sign(PSP_WEBHOOK_SECRET, news))])
        forged = self.post(gopay, news, sign("another secret", news))
        after = taken(gopay.server, "/v1/psp/webhooks")
        assert (middle["fast_lane"] - before["fast_lane"], middle["route"] - before["route"]) == (1, 0)
        assert (after["fast_lane"] - middle["fast_lane"], after["route"] - middle["route"]) == (0, 3)
        assert fast.status_code == routed.status_code == twice.status_code == 200
        assert fast.json() == routed.json() == twice.json() == {"received": True}
        assert all(fast.headers[name] == routed.headers[name]
                   for name in ("content-type", "content-length"))
        assert forged.status_code == 400
        assert person.balance() == 900

    def test_a_late_failure_after_a_success_changes_nothing(self, gopay: Deployment) -> None:
        """Out of order: a `charge.failed` arriving after the top-up succeeded is harmless."""
        person, card = gopay.customer()
        order = top_up(person, card, 900).json()
        body = self.event(type="charge.failed", merchant_reference=order["id"],
                          psp_reference=order["psp_reference"], amount=900, currency="USD", fee=0,
                          status="failed", failure_reason="card_declined")
        assert self.post(gopay, body, sign(PSP_WEBHOOK_SECRET, body)).status_code == 200
        time.sleep(0.5)
        assert person.get(f"/v1/topups/{order['id']}").json()["status"] == "succeeded"
        assert person.balance() == 900


class TestDeadLetters:
    @pytest.fixture
    def failing(self, postgres_server: Any, tmp_path: Path) -> Iterator[Deployment]:
        """A GoPay that gives a call up after two attempts, a second apart."""
        deployment = Deployment(postgres_server, tmp_path, GOPAY_PSP_RETRY_ATTEMPTS="2").start()
        yield deployment
        deployment.stop()

    def test_a_call_given_up_on_is_listed_and_can_be_tried_again(self, failing: Deployment) -> None:
        """The PSP answers 5xx to everything: the top-up is dead-lettered, listed for admins,
        and once the PSP is back a retry settles it, once."""
        person, card = failing.customer()
        failing.faults(error_5xx=1.0, error_5xx_work_done=0.0)
        order = top_up(person, card, 600).json()
        assert order["status"] == "pending"
        letters = eventually(lambda: failing.admin.get("/v1/admin/dead-letters").json()["data"])
        [letter] = [x for x in letters if x["order_id"] == order["id"]]
        assert letter["operation"] == "charge" and letter["attempts"] == 2
        assert "no answer" in letter["last_error"]
        failing.faults()
        retried = failing.admin.post(f"/v1/admin/dead-letters/{letter['id']}/retry")
        assert retried.status_code == 200, retried.text
        assert settled(person, "topups", order["id"])["status"] == "succeeded"
        assert person.balance() == 600
        assert failing.admin.get("/v1/admin/dead-letters").json()["data"] == []
        assert person.get("/v1/admin/dead-letters").status_code == 403
