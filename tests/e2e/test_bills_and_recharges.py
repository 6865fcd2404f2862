"""Bills and mobile recharge over HTTP, with GoPay and the simulator (PSP and operators' gateway)
each its own process, calling each other over HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.test_topups_and_payouts import CLOSED_IBAN, IBAN, Deployment, eventually, settled
from tests.e2e.test_two_factor import code, with_two_factor
from tests.support import Client, fund, register

UNSERVED = "+15550000000"
# Unverified customers may pay at most 200.00 at a time here; no other limit is reached.
LIMITS = json.dumps({"unverified": {"per_payment": 20_000, "per_day": 10**12,
                                    "max_balance": 10**12}})
FEES = json.dumps({"bill_payment": {"fixed": 25}, "recharge": {"fixed": 10}})
STEP_UP = 5_000


@pytest.fixture(scope="module")
def gopay(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(postgres_server, tmp_path_factory.mktemp("bills"),
                            GOPAY_KYC_LIMITS=LIMITS, GOPAY_FEES=FEES,
                            GOPAY_STEP_UP_AMOUNT=str(STEP_UP)).start()
    yield deployment
    deployment.stop()


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert response.headers["content-type"] == "application/problem+json"


def customer(gopay: Deployment, funds: int = 0) -> Client:
    person = register(gopay.server.url)
    if funds:
        fund(gopay.admin, person.user["wallet_id"], funds)
    return person


def wallet(person: Client) -> tuple[int, int]:
    body = ok(person.get("/v1/wallet"))
    return body["balance"], body["held"]


def freeze(gopay: Deployment, person: Client) -> None:
    ok(gopay.admin.post(f"/v1/admin/users/{person.user['id']}/freeze"))


# Bills


def new_biller(gopay: Deployment, iban: str | None = IBAN, **fields: Any) -> dict[str, Any]:
    body = {"name": f"City Power {uuid.uuid4().hex[:6]}", "category": "electricity", **fields}
    if iban:
        body["bank_account"] = {"iban": iban, "holder_name": "City Power Ltd"}
    return ok(gopay.admin.post("/v1/admin/billers", body), 201)


def pay_bill(person: Client, biller: dict[str, Any], amount: int, reference: str = "ACC-1001",
             key: str | None = None, headers: dict[str, str] | None = None,
             **fields: Any) -> httpx.Response:
    return person.post("/v1/bill-payments", {"biller_id": biller["id"],
                                             "customer_reference": reference, "amount": amount,
                                             "currency": "USD", **fields}, key=key, headers=headers)


def payable(gopay: Deployment, biller: dict[str, Any]) -> dict[str, Any]:
    return ok(gopay.admin.get(f"/v1/admin/billers/{biller['id']}"))["payable"]


class TestBillers:
    def test_admins_set_billers_up_and_customers_find_them(self, gopay: Deployment) -> None:
        """201 with the payable account (empty) and the bank account masked; `q` finds it by
        name or category, page by page."""
        biller = new_biller(gopay, name="Aqua Springs Water", category="water")
        assert (biller["name"], biller["category"], biller["currency"]) == (
            "Aqua Springs Water", "water", "USD")
        assert biller["bank_account"] == "DE ...3000" and IBAN not in json.dumps(biller)
        assert (biller["payable"]["id"], biller["payable"]["balance"]) == (biller["wallet_id"], 0)
        person = customer(gopay)
        found = ok(person.get("/v1/billers", params={"q": "springs"}))
        assert [b["id"] for b in found["data"]] == [biller["id"]]
        assert "bank_account" not in found["data"][0]
        assert ok(person.get("/v1/billers", params={"q": "WATER"}))["data"][0]["id"] == biller["id"]
        second = new_biller(gopay, name="Aqua Springs Gas", category="gas")
        page = ok(person.get("/v1/billers", params={"q": "aqua springs", "limit": 1}))
        assert [b["id"] for b in page["data"]] == [second["id"]] and page["next_cursor"]
        rest = ok(person.get("/v1/billers", params={"q": "aqua springs", "limit": 1,
                                                    "cursor": page["next_cursor"]}))
        assert [b["id"] for b in rest["data"]] == [biller["id"]] and rest["next_cursor"] is None
        assert ok(person.get("/v1/billers", params={"q": "100%"}))["data"] == []

    def test_bad_billers_are_refused(self, gopay: Deployment) -> None:
        for body in ({"name": "X"}, {"name": "", "category": "water"},
                     {"name": "X", "category": "water", "currency": "ZZZ"},
                     {"name": "X", "category": "water", "bank_account": {
                         "iban": "DE00370400440532013000", "holder_name": "X"}},
                     {"name": "X", "category": "water", "owner": "me"}):
            refused(gopay.admin.post("/v1/admin/billers", body), 422, "validation_error")

    def test_a_repeated_key_sets_up_one_biller(self, gopay: Deployment) -> None:
        body = {"name": "Fibre Net", "category": "internet"}
        first = ok(gopay.admin.post("/v1/admin/billers", body, key="fibre"), 201)
        assert ok(gopay.admin.post("/v1/admin/billers", body, key="fibre"), 201) == first
        refused(gopay.admin.post("/v1/admin/billers", {**body, "name": "Other"}, key="fibre"),
                409, "idempotency_conflict")


class TestBillPayments:
    def test_a_bill_payment_credits_the_billers_payable_account(self, gopay: Deployment) -> None:
        """201 succeeded; the payer's history names the biller's account and the customer
        reference; the biller's history names the payer; the fee goes to GoPay."""
        biller = new_biller(gopay)
        person = customer(gopay, 10_000)
        response = pay_bill(person, biller, 4_000, reference="INV-2026-03")
        body = ok(response, 201)
        assert (body["status"], body["biller_id"], body["customer_reference"], body["amount"]) == (
            "succeeded", biller["id"], "INV-2026-03", 4_000)
        assert ok(person.get(f"/v1/bill-payments/{body['id']}")) == body
        assert wallet(person) == (10_000 - 4_000 - 25, 0)
        fee, bill = person.history()[:2]  # newest first
        assert (bill["type"], bill["direction"], bill["amount"], bill["counterparty"],
                bill["reference"]) == ("bill_payment", "debit", 4_000, biller["wallet_id"],
                                       "INV-2026-03")
        assert (fee["type"], fee["amount"]) == ("fee", 25)
        assert payable(gopay, biller)["balance"] == 4_000
        [line] = ok(gopay.admin.get(f"/v1/admin/billers/{biller['id']}/transactions"))["data"]
        assert (line["type"], line["direction"], line["amount"], line["counterparty"],
                line["reference"]) == ("bill_payment", "credit", 4_000,
                                       person.user["wallet_id"], "INV-2026-03")

    def test_each_refusal_moves_nothing(self, gopay: Deployment) -> None:
        """Not enough money, over the limit, a frozen wallet, an unknown biller, another
        currency: each refused with its code, and no money moves."""
        biller = new_biller(gopay)
        person = customer(gopay, 10_000)
        refused(pay_bill(person, biller, 20_001), 422, "limit_exceeded")
        refused(pay_bill(person, biller, 9_990), 422, "insufficient_funds")  # 9,990 + 25 of fee
        refused(pay_bill(person, {"id": str(uuid.uuid4())}, 100), 404, "not_found")
        refused(pay_bill(person, {"id": biller["wallet_id"]}, 100), 404, "not_found")
        refused(pay_bill(person, biller, 100, currency="EUR"), 422, "currency_mismatch")
        refused(pay_bill(person, biller, 100, reference=" "), 422, "validation_error")
        refused(pay_bill(person, biller, 10.5), 422, "validation_error")  # type: ignore[arg-type]  # a float on purpose
        frozen = customer(gopay, 1_000)
        freeze(gopay, frozen)
        refused(pay_bill(frozen, biller, 100), 423, "account_frozen")
        assert [wallet(p)[0] for p in (person, frozen)] == [10_000, 1_000]
        assert payable(gopay, biller)["balance"] == 0
        # Another customer's bill payment does not exist for them.
        paid = ok(pay_bill(person, biller, 100), 201)
        refused(frozen.get(f"/v1/bill-payments/{paid['id']}"), 404, "not_found")

    def test_the_same_idempotency_key_pays_once(self, gopay: Deployment) -> None:
        """Five at once with one key: one payment, one answer; another body with it is a 409."""
        biller = new_biller(gopay)
        person = customer(gopay, 5_000)
        with ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(lambda _: pay_bill(person, biller, 1_000, key="bill-9"),
                                    range(5)))
        assert {a.status_code for a in answers} <= {201, 409}
        paid = [a.json() for a in answers if a.status_code == 201]
        assert paid and all(p == paid[0] for p in paid)
        assert ok(pay_bill(person, biller, 1_000, key="bill-9"), 201) == paid[0]
        refused(pay_bill(person, biller, 1_001, key="bill-9"), 409, "idempotency_conflict")
        assert wallet(person)[0] == 5_000 - 1_025
        assert payable(gopay, biller)["balance"] == 1_000


class TestSettlements:
    def test_what_is_owed_is_paid_out_to_the_billers_bank(self, gopay: Deployment) -> None:
        """All that is available goes to the bank: the PSP pays it once (one payout line), the
        payable account is empty and shows the settlement."""
        biller = new_biller(gopay)
        for amount in (1_500, 2_500):
            ok(pay_bill(customer(gopay, 5_000), biller, amount), 201)
        response = gopay.admin.post(f"/v1/admin/billers/{biller['id']}/settlements", key="s-1")
        body = ok(response, 201)
        assert (body["status"], body["amount"], body["reference"]) == (
            "succeeded", 4_000, "settlement to DE ...3000")
        assert body["psp_reference"].startswith("po_")
        [line] = gopay.lines_for(body["id"])
        assert (line["type"], line["amount"], line["status"]) == ("payout", "4000", "settled")
        assert (payable(gopay, biller)["balance"], payable(gopay, biller)["held"]) == (0, 0)
        history = ok(gopay.admin.get(f"/v1/admin/billers/{biller['id']}/transactions"))["data"]
        assert (history[0]["type"], history[0]["direction"], history[0]["amount"]) == (
            "settlement", "debit", 4_000)
        again = gopay.admin.post(f"/v1/admin/billers/{biller['id']}/settlements", key="s-1")
        assert ok(again, 201)["id"] == body["id"] and len(gopay.lines_for(body["id"])) == 1
        refused(gopay.admin.post(f"/v1/admin/billers/{biller['id']}/settlements"), 409,
                "invalid_state")
        shown = ok(gopay.admin.get(f"/v1/admin/billers/{biller['id']}/settlements/{body['id']}"))
        assert (shown["status"], shown["amount"]) == ("succeeded", 4_000)

    def test_a_closed_account_gives_the_money_back(self, gopay: Deployment) -> None:
        """The IBAN set later is closed: the payout fails and the money is owed again."""
        biller = new_biller(gopay, iban=None)
        ok(pay_bill(customer(gopay, 5_000), biller, 3_000), 201)
        refused(gopay.admin.post(f"/v1/admin/billers/{biller['id']}/settlements"), 409,
                "invalid_state")  # no bank account yet
        changed = ok(gopay.admin.http.put(f"/v1/admin/billers/{biller['id']}/bank-account",
                                          json={"iban": CLOSED_IBAN, "holder_name": "Power"}))
        assert changed["bank_account"] == "GB ...5555"
        body = ok(gopay.admin.post(f"/v1/admin/billers/{biller['id']}/settlements",
                                   {"amount": 2_000}), 201)
        assert (body["status"], body["failure_reason"]) == ("failed", "account_closed")
        assert (payable(gopay, biller)["balance"], payable(gopay, biller)["held"]) == (3_000, 0)
        refused(gopay.admin.post(f"/v1/admin/billers/{biller['id']}/settlements",
                                 {"amount": 3_001}), 422, "insufficient_funds")

    def test_a_settlement_without_an_answer_is_held_until_the_psp_tells(
            self, gopay: Deployment) -> None:
        biller = new_biller(gopay)
        ok(pay_bill(customer(gopay, 5_000), biller, 1_000), 201)
        # Every answer lost and no webhook: GoPay cannot learn anything until the faults go.
        gopay.faults(drop_response=1.0, drop_webhook=1.0)
        try:
            body = ok(gopay.admin.post(f"/v1/admin/billers/{biller['id']}/settlements"), 202)
            assert body["status"] == "pending" and payable(gopay, biller)["held"] == 1_000
        finally:
            gopay.faults()
        path = f"/v1/admin/billers/{biller['id']}/settlements/{body['id']}"
        assert eventually(lambda: ok(gopay.admin.get(path))["status"] == "succeeded")
        assert (payable(gopay, biller)["balance"], payable(gopay, biller)["held"]) == (0, 0)
        assert len(gopay.lines_for(body["id"])) == 1


# Mobile recharge


def new_operator(gopay: Deployment, country: str = "US") -> dict[str, Any]:
    return ok(gopay.admin.post("/v1/admin/operators", {
        "name": f"Telco {uuid.uuid4().hex[:6]}", "country": country}), 201)


def recharge(person: Client, operator: dict[str, Any], amount: int, phone: str = "+12025550143",
             key: str | None = None, **fields: Any) -> httpx.Response:
    return person.post("/v1/recharges", {"phone_number": phone, "operator_id": operator["id"],
                                         "amount": amount, "currency": "USD", **fields}, key=key)


class TestOperators:
    def test_admins_add_operators_and_customers_list_them(self, gopay: Deployment) -> None:
        operator = new_operator(gopay, "KE")
        assert (operator["country"], operator["currency"]) == ("KE", "USD")
        person = customer(gopay)
        listed = ok(person.get("/v1/operators", params={"country": "KE"}))["data"]
        assert operator["id"] in [o["id"] for o in listed]
        assert all(o["country"] == "KE" for o in listed)
        refused(gopay.admin.post("/v1/admin/operators", {"name": "X", "country": "XX"}), 422,
                "validation_error")
        refused(person.get("/v1/operators", params={"country": "kenya"}), 422, "validation_error")


class TestRecharges:
    def test_a_recharge_pays_the_operator(self, gopay: Deployment) -> None:
        """201 succeeded: the airtime and its fee leave the wallet, the operator is credited,
        and the history names the operator's account and the phone number."""
        operator = new_operator(gopay)
        person = customer(gopay, 5_000)
        body = ok(recharge(person, operator, 1_000), 201)
        assert (body["status"], body["phone_number"], body["operator_id"], body["amount"]) == (
            "succeeded", "+12025550143", operator["id"], 1_000)
        assert body["operator_reference"].startswith("rc_")
        assert ok(person.get(f"/v1/recharges/{body['id']}")) == body
        assert wallet(person) == (5_000 - 1_010, 0)
        airtime = next(line for line in person.history() if line["type"] == "recharge")
        assert (airtime["direction"], airtime["amount"], airtime["counterparty"],
                airtime["reference"]) == ("debit", 1_000, operator["wallet_id"], "+12025550143")
        assert gopay.lines_for(body["id"]) == [], "a recharge is no line of the PSP's file"

    def test_a_failing_recharge_gives_the_money_back(self, gopay: Deployment) -> None:
        """The number no operator serves: 201 failed, nothing paid, nothing left held."""
        operator = new_operator(gopay)
        person = customer(gopay, 5_000)
        body = ok(recharge(person, operator, 1_000, phone=UNSERVED), 201)
        assert (body["status"], body["failure_reason"]) == ("failed", "number_not_served")
        assert wallet(person) == (5_000, 0)
        assert person.history()[0]["type"] == "adjustment"  # the funding, and nothing since

    def test_a_failure_learnt_later_gives_the_money_back(self, gopay: Deployment) -> None:
        """The operator's answer is lost: 202 pending with the money held; GoPay learns the
        failure by asking the gateway again and releases the hold by itself."""
        operator = new_operator(gopay)
        person = customer(gopay, 5_000)
        # Every answer lost and no webhook: GoPay cannot learn anything until the faults go.
        gopay.faults(drop_response=1.0, drop_webhook=1.0)
        try:
            body = ok(recharge(person, operator, 2_000, phone=UNSERVED), 202)
            assert body["status"] == "pending" and wallet(person) == (5_000, 2_010)
        finally:
            gopay.faults()
        final = settled(person, "recharges", body["id"])
        assert (final["status"], final["failure_reason"]) == ("failed", "number_not_served")
        assert wallet(person) == (5_000, 0)

    def test_each_refusal_holds_nothing(self, gopay: Deployment) -> None:
        operator = new_operator(gopay)
        person = customer(gopay, 10_000)
        refused(recharge(person, operator, 20_001), 422, "limit_exceeded")
        refused(recharge(person, operator, 9_995), 422, "insufficient_funds")  # + 10 of fee
        refused(recharge(person, {"id": str(uuid.uuid4())}, 100), 404, "not_found")
        refused(recharge(person, operator, 100, currency="EUR"), 422, "currency_mismatch")
        refused(recharge(person, operator, 100, phone="555-0143"), 422, "validation_error")
        frozen = customer(gopay, 1_000)
        freeze(gopay, frozen)
        refused(recharge(frozen, operator, 100), 423, "account_frozen")
        assert [wallet(p) for p in (person, frozen)] == [(10_000, 0), (1_000, 0)]
        # Another customer's recharge does not exist for them.
        done = ok(recharge(person, operator, 100), 201)
        refused(frozen.get(f"/v1/recharges/{done['id']}"), 404, "not_found")

    def test_the_same_idempotency_key_recharges_once(self, gopay: Deployment) -> None:
        """Five at once with one key: one order, one recharge at the operator, one debit."""
        operator = new_operator(gopay)
        person = customer(gopay, 5_000)
        with ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(lambda _: recharge(person, operator, 800, key="airtime"),
                                    range(5)))
        ids = {a.json()["id"] for a in answers if a.status_code in (201, 202)}
        assert len(ids) == 1, [a.text for a in answers]
        [order_id] = ids
        assert settled(person, "recharges", order_id)["status"] == "succeeded"
        again = ok(recharge(person, operator, 800, key="airtime"), 201)
        assert again["id"] == order_id
        refused(recharge(person, operator, 900, key="airtime"), 409, "idempotency_conflict")
        assert wallet(person) == (5_000 - 810, 0)
        events = httpx.get(f"{gopay.simulator.url}/sim/events",
                           params={"nonce": order_id}).json()["data"]
        assert [event["type"] for event in events] == ["recharge.succeeded"]


class TestStepUp:
    def test_large_bills_and_recharges_need_a_fresh_second_factor(self, gopay: Deployment) -> None:
        """With 2FA on, from the step-up amount up: 401 otp_required and nothing moves without
        a fresh code; with one the bill is paid; below the amount no code is asked."""
        biller, operator = new_biller(gopay), new_operator(gopay)
        person, secret, _ = with_two_factor(gopay.server.url)
        fund(gopay.admin, person.user["wallet_id"], 20_000)
        refused(pay_bill(person, biller, STEP_UP, key="big-bill"), 401, "otp_required")
        refused(recharge(person, operator, STEP_UP), 401, "otp_required")
        assert wallet(person) == (20_000, 0)
        paid = pay_bill(person, biller, STEP_UP, key="big-bill",
                        headers={"GoPay-OTP": code(secret, 1)})
        assert ok(paid, 201)["status"] == "succeeded"
        assert ok(recharge(person, operator, STEP_UP - 1), 201)["status"] == "succeeded"
        assert wallet(person) == (20_000 - STEP_UP - 25 - (STEP_UP - 1) - 10, 0)
