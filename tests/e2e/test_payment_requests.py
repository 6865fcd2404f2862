"""Payment requests over HTTP: ask, pay once as a transfer, decline, cancel, expire, list both directions."""

from __future__ import annotations

import concurrent.futures
import json
import time
from typing import Any

import httpx
import pyotp
import pytest

from tests.conftest import new_database
from tests.support import NO_LIMIT, Client, fund, gopay_env, register

LIMITS = {"unverified": {**NO_LIMIT, "per_payment": 100_000}, "verified": NO_LIMIT}


@pytest.fixture(scope="module")
def server_env(postgres_server, tmp_path_factory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return gopay_env(new_database(postgres_server), tmp_path_factory.mktemp("var"),
                     GOPAY_KYC_LIMITS=json.dumps(LIMITS),
                     GOPAY_FEES=json.dumps({"transfer": {"fixed": 25}}))


@pytest.fixture
def ada(server) -> Client:  # type: ignore[no-untyped-def]
    """Ada asks for money."""
    return register(server.url)


@pytest.fixture
def grace(server, admin: Client) -> Client:  # type: ignore[no-untyped-def]
    """Grace is asked, and has the money."""
    grace = register(server.url)
    fund(admin, grace.user["wallet_id"], 20_000)
    return grace


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert (response.status_code, response.headers["content-type"]) == (
        status, "application/problem+json"), response.text
    assert response.json()["code"] == code, response.text


def ask(requester: Client, payer: Client, amount: int, **body: Any) -> dict[str, Any]:
    return ok(requester.post("/v1/payment-requests", {"payer": payer.user["email"],
                                                      "amount": amount, "currency": "USD",
                                                      **body}), 201)


class TestAskingAndPaying:
    def test_paid_as_a_transfer_in_both_histories_with_the_request_as_reference(
            self, ada: Client, grace: Client) -> None:
        request = ask(ada, grace, 1_500, note="concert tickets")
        assert (request["status"], request["role"], request["note"]) == (
            "open", "requester", "concert tickets")
        assert ok(grace.get(f"/v1/payment-requests/{request['id']}"))["role"] == "payer"

        paid = ok(grace.post(f"/v1/payment-requests/{request['id']}/pay"))
        assert (paid["status"], paid["role"]) == ("paid", "payer")
        assert (ada.balance(), grace.balance()) == (1_500, 20_000 - 1_500 - 25)
        transfer = paid["transfer_id"]
        [received] = [h for h in ada.history() if h["id"] == transfer]
        assert (received["type"], received["direction"], received["counterparty"],
                received["reference"]) == ("transfer", "credit", grace.user["wallet_id"],
                                           request["id"])
        sent = sorted((h["type"], h["amount"], h["counterparty"], h["reference"])
                      for h in grace.history() if h["id"] == transfer)
        assert sent == [("fee", 25, "fees", request["id"]),
                        ("transfer", 1_500, ada.user["wallet_id"], request["id"])]
        assert ok(ada.get(f"/v1/transfers/{transfer}"))["amount"] == 1_500
        assert ok(ada.get(f"/v1/payment-requests/{request['id']}"))["status"] == "paid"

    def test_paying_twice_pays_once(self, ada: Client, grace: Client) -> None:
        request = ask(ada, grace, 1_000)
        ok(grace.post(f"/v1/payment-requests/{request['id']}/pay"))
        refused(grace.post(f"/v1/payment-requests/{request['id']}/pay"), 409, "invalid_state")
        assert ada.balance() == 1_000

    def test_a_request_paid_twice_at_once_is_paid_once(self, ada: Client, grace: Client) -> None:
        request = ask(ada, grace, 1_000)
        path = f"/v1/payment-requests/{request['id']}/pay"
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda n: grace.post(path, key=f"pay-{n}"), range(8)))
        assert sorted(a.status_code for a in answers) == [200] + [409] * 7, [a.text for a in answers]
        assert (ada.balance(), grace.balance()) == (1_000, 20_000 - 1_025)

    def test_a_repeat_with_the_same_key_answers_the_same(self, ada: Client, grace: Client) -> None:
        body = {"payer": grace.user["phone"], "amount": 700, "currency": "USD"}
        first = ok(ada.post("/v1/payment-requests", body, key="ask-1"), 201)
        assert ok(ada.post("/v1/payment-requests", body, key="ask-1"), 201) == first
        refused(ada.post("/v1/payment-requests", {**body, "amount": 800}, key="ask-1"),
                409, "idempotency_conflict")
        path = f"/v1/payment-requests/{first['id']}/pay"
        paid = ok(grace.post(path, key="pay-1"))
        assert ok(grace.post(path, key="pay-1")) == paid
        assert ada.balance() == 700

    def test_the_list_shows_both_directions_newest_first_in_pages(self, server, ada: Client,  # type: ignore[no-untyped-def]
                                                                  grace: Client) -> None:
        asked = [ask(ada, grace, 100 + n)["id"] for n in range(3)]
        received = ask(grace, ada, 50)["id"]
        ok(grace.post(f"/v1/payment-requests/{asked[0]}/decline"))
        first = ok(ada.get("/v1/payment-requests", params={"limit": 3}))
        second = ok(ada.get("/v1/payment-requests", params={"limit": 3,
                                                           "cursor": first["next_cursor"]}))
        listed = first["data"] + second["data"]
        assert [r["id"] for r in listed] == [received, *reversed(asked)]
        assert second["next_cursor"] is None
        assert [r["role"] for r in listed] == ["payer"] + ["requester"] * 3
        assert listed[-1]["status"] == "declined"
        payer_side = ok(ada.get("/v1/payment-requests", params={"role": "payer"}))["data"]
        assert [r["id"] for r in payer_side] == [received]
        declined = ok(ada.get("/v1/payment-requests", params={"status": "declined"}))["data"]
        assert [r["id"] for r in declined] == [asked[0]]
        stranger = register(server.url)
        assert ok(stranger.get("/v1/payment-requests"))["data"] == []
        refused(stranger.get("/v1/payment-requests", params={"cursor": asked[1]}), 422,
                "validation_error")


class TestRefusals:
    def test_a_declined_request_cannot_be_paid(self, ada: Client, grace: Client) -> None:
        request = ask(ada, grace, 1_000)
        assert ok(grace.post(f"/v1/payment-requests/{request['id']}/decline"))["status"] == "declined"
        refused(grace.post(f"/v1/payment-requests/{request['id']}/pay"), 409, "invalid_state")
        assert grace.balance() == 20_000

    def test_an_expired_request_cannot_be_paid(self, ada: Client, grace: Client) -> None:
        request = ask(ada, grace, 1_000, expires_in=1)
        time.sleep(1.2)
        assert ok(grace.get(f"/v1/payment-requests/{request['id']}"))["status"] == "expired"
        refused(grace.post(f"/v1/payment-requests/{request['id']}/pay"), 409, "invalid_state")
        assert grace.balance() == 20_000

    def test_a_cancelled_request_cannot_be_paid(self, ada: Client, grace: Client) -> None:
        request = ask(ada, grace, 1_000)
        assert ok(ada.post(f"/v1/payment-requests/{request['id']}/cancel"))["status"] == "cancelled"
        refused(grace.post(f"/v1/payment-requests/{request['id']}/pay"), 409, "invalid_state")

    def test_the_transfer_rules_apply(self, admin: Client, ada: Client, grace: Client) -> None:
        """Not enough money, the tier's limit, a frozen payer: refused, and the request stays open."""
        too_much = ask(ada, grace, 20_000)
        refused(grace.post(f"/v1/payment-requests/{too_much['id']}/pay"), 422,
                "insufficient_funds")
        fund(admin, grace.user["wallet_id"], 200_000)
        over_limit = ask(ada, grace, 100_001)
        refused(grace.post(f"/v1/payment-requests/{over_limit['id']}/pay"), 422, "limit_exceeded")
        ok(admin.post(f"/v1/admin/users/{grace.user['id']}/freeze"))
        refused(grace.post(f"/v1/payment-requests/{too_much['id']}/pay"), 423, "account_frozen")
        assert ok(ada.get(f"/v1/payment-requests/{too_much['id']}"))["status"] == "open"
        assert ada.balance() == 0

    def test_large_payments_need_a_fresh_second_factor(self, server, admin: Client,  # type: ignore[no-untyped-def]
                                                       ada: Client) -> None:
        """From the step-up amount (50,000) a payer with 2FA on sends a code, as for transfers."""
        payer = register(server.url)
        secret = ok(payer.post("/v1/auth/2fa/setup"))["secret"]
        ok(payer.post("/v1/auth/2fa/enable", {"otp": pyotp.TOTP(secret).now()}))
        fund(admin, payer.user["wallet_id"], 60_000)
        request = ask(ada, payer, 50_000)
        path = f"/v1/payment-requests/{request['id']}/pay"
        refused(payer.post(path), 401, "otp_required")
        fresh = pyotp.TOTP(secret).at(time.time() + 30)
        ok(payer.post(path, headers={"GoPay-OTP": fresh}))
        assert ada.balance() == 50_000

    def test_bad_requests(self, ada: Client, grace: Client) -> None:
        for body, status, code in (
                ({"payer": ada.user["email"], "amount": 100, "currency": "USD"}, 422,
                 "validation_error"),
                ({"payer": "nobody@example.com", "amount": 100, "currency": "USD"}, 404,
                 "not_found"),
                ({"payer": grace.user["email"], "amount": 1.5, "currency": "USD"}, 422,
                 "validation_error"),
                ({"payer": grace.user["email"], "amount": 100, "currency": "EUR"}, 422,
                 "currency_mismatch"),
                ({"payer": grace.user["email"], "amount": 100, "currency": "USD",
                  "expires_in": 10**9}, 422, "validation_error")):
            refused(ada.post("/v1/payment-requests", body), status, code)


class TestOnlyThePartiesSeeIt:
    def test_only_the_payer_pays_or_declines_and_only_the_requester_cancels(
            self, server, ada: Client, grace: Client) -> None:  # type: ignore[no-untyped-def]
        """Anyone else is told it does not exist, and nothing changes."""
        request = ask(ada, grace, 1_000)
        mallory = register(server.url)
        for client, action in ((ada, "pay"), (ada, "decline"), (mallory, "pay"),
                               (mallory, "decline"), (grace, "cancel"), (mallory, "cancel")):
            refused(client.post(f"/v1/payment-requests/{request['id']}/{action}"), 404,
                    "not_found")
        refused(mallory.get(f"/v1/payment-requests/{request['id']}"), 404, "not_found")
        assert ok(ada.get(f"/v1/payment-requests/{request['id']}"))["status"] == "open"
