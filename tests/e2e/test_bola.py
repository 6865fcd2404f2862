"""Object-level authorization (BOLA): every endpoint that takes an id answers 404 to a customer
who is not party to that object, exactly as for an id that does not exist, and changes nothing."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from stdnum import iban, luhn

from tests.support import PASSWORD, Client, free_port, fund, register

HTTP_METHODS = {"get", "put", "post", "patch", "delete"}
# Id-taking paths outside this test: staff-only ones (their roles: tests/e2e/test_roles.py)
# and the lost phone's status, which it asks for without signing in, by design.
STAFF_ONLY = ("/v1/admin/", "/v1/audit/", "/v1/reconciliation/")
PUBLIC = {("GET", "/v1/devices/{device_id}/status")}
# Paths whose parameter names no one's object: each caller reads only their own wallet's month.
NOT_IDS = {("GET", "/v1/wallet/statements/{month}")}


@dataclass
class People:
    """Alice owns things; Bob gets money from her; she cashes out at an agent; Mallory, a
    merchant (and its server, with the merchant's API key) and a rival agent have no part in it."""

    url: str
    admin: Client
    alice: Client
    bob: Client
    mallory: Client
    merchant: Client
    merchant_server: Client
    agent: Client
    rival_agent: Client

    @property
    def customers(self) -> tuple[Client, ...]:
        return (self.alice, self.bob, self.mallory, self.merchant, self.agent, self.rival_agent)


@dataclass
class Owned:
    """Something of Alice's: its id, an id like it that names nothing, who may see it, and a
    check that it is as it was (which reads it as its parties, so the id is a real one)."""

    id: str
    unknown_id: str
    parties: tuple[Client, ...]
    is_unchanged: Callable[[], None]
    # Who may call the endpoint at all (the others are refused by role: tests/e2e/test_roles.py);
    # None: every customer.
    callers: tuple[Client, ...] | None = None


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def payment_method(people: People) -> Owned:
    alice = people.alice
    method = _ok(alice.get(f"/v1/payment-methods/{_card(alice)}"))

    def is_unchanged() -> None:
        assert method["id"] in [m["id"] for m in _ok(alice.get("/v1/payment-methods"))["data"]]
        assert _ok(alice.get(f"/v1/payment-methods/{method['id']}")) == method

    return Owned(method["id"], str(uuid.uuid4()), (alice,), is_unchanged)


def device(people: People) -> Owned:
    """Alice's phone, signed in: its tokens must go on working and nothing may mark it lost."""
    device_id = f"phone-{uuid.uuid4()}"
    signed_in = _ok(httpx.post(f"{people.url}/v1/auth/login", json={
        "email": people.alice.user["email"], "password": PASSWORD, "device_id": device_id}))
    phone = Client(people.url, signed_in["access_token"])

    def is_unchanged() -> None:
        assert phone.get("/v1/wallet").status_code == 200
        listed = {d["id"]: d for d in _ok(people.alice.get("/v1/me/devices"))}
        assert (listed[device_id]["locked"], listed[device_id]["wipe"]) == (False, False)
        status = httpx.get(f"{people.url}/v1/devices/{device_id}/status")
        assert _ok(status) == {"locked": False, "wipe": False}

    return Owned(device_id, f"phone-{uuid.uuid4()}", (people.alice,), is_unchanged)


def transfer(people: People) -> Owned:
    alice, bob = people.alice, people.bob
    fund(people.admin, alice.user["wallet_id"], 5_000)
    sent = _ok(alice.post("/v1/transfers", {"recipient": bob.user["email"], "amount": 1_234,
                                            "currency": "USD"}), 201)
    seen = _ok(alice.get(f"/v1/transfers/{sent['id']}"))
    balances = (alice.balance(), bob.balance())

    def is_unchanged() -> None:
        assert [_ok(party.get(f"/v1/transfers/{sent['id']}")) for party in (alice, bob)] == [
            seen, seen]
        assert (alice.balance(), bob.balance()) == balances

    return Owned(sent["id"], str(uuid.uuid4()), (alice, bob), is_unchanged)


def _external_payment(people: People, kind: str, method: dict[str, Any]) -> Owned:
    """Alice's top-up or payout, pending: this GoPay's PSP never answers (see `server_env`)."""
    alice = people.alice
    saved = _ok(alice.post("/v1/payment-methods", method), 201)
    if kind == "payouts":
        fund(people.admin, alice.user["wallet_id"], 1_000)
    order = _ok(alice.post(f"/v1/{kind}", {"amount": 500, "currency": "USD",
                                           "payment_method_id": saved["id"]}), 202)
    wallet = _ok(alice.get("/v1/wallet"))

    def is_unchanged() -> None:
        assert _ok(alice.get(f"/v1/{kind}/{order['id']}")) == order
        assert _ok(alice.get("/v1/wallet")) == wallet

    return Owned(order["id"], str(uuid.uuid4()), (alice,), is_unchanged)


def top_up(people: People) -> Owned:
    payload = "4" + f"{uuid.uuid4().int % 10**14:014d}"
    return _external_payment(people, "topups", {"type": "card", "card": {
        "number": payload + luhn.calc_check_digit(payload), "exp_month": 12,
        "exp_year": datetime.now(UTC).year + 3, "cvc": "123", "holder_name": "Alice"}})


def payout(people: People) -> Owned:
    account = f"{uuid.uuid4().int % 10**10:010d}"
    return _external_payment(people, "payouts", {"type": "bank_account", "bank_account": {
        "iban": "DE" + iban.calc_check_digits("DEXX37040044" + account) + "37040044" + account,
        "holder_name": "Alice"}})


def bill_payment(people: People) -> Owned:
    alice = people.alice
    fund(people.admin, alice.user["wallet_id"], 1_000)
    biller = _ok(people.admin.post("/v1/admin/billers", {"name": "BOLA Power",
                                                          "category": "electricity"}), 201)
    paid = _ok(alice.post("/v1/bill-payments", {"biller_id": biller["id"],
                                                "customer_reference": "ACC-7", "amount": 321,
                                                "currency": "USD"}), 201)
    balance = alice.balance()

    def is_unchanged() -> None:
        assert _ok(alice.get(f"/v1/bill-payments/{paid['id']}")) == paid
        assert alice.balance() == balance

    return Owned(paid["id"], str(uuid.uuid4()), (alice,), is_unchanged)


def recharge(people: People) -> Owned:
    """Alice's recharge, pending: this GoPay's operators' gateway never answers (see `server_env`)."""
    alice = people.alice
    fund(people.admin, alice.user["wallet_id"], 1_000)
    operator = _ok(people.admin.post("/v1/admin/operators", {"name": "BOLA Telco",
                                                              "country": "US"}), 201)
    bought = _ok(alice.post("/v1/recharges", {"phone_number": "+12025550143",
                                              "operator_id": operator["id"], "amount": 222,
                                              "currency": "USD"}), 202)
    wallet = _ok(alice.get("/v1/wallet"))

    def is_unchanged() -> None:
        assert _ok(alice.get(f"/v1/recharges/{bought['id']}")) == bought
        assert _ok(alice.get("/v1/wallet")) == wallet

    return Owned(bought["id"], str(uuid.uuid4()), (alice,), is_unchanged)


def _shop_sale(people: People) -> tuple[Client, Client, dict[str, Any]]:
    """A merchant of its own (not the people's merchant), and Alice's QR payment to it."""
    shop = register(people.url, kind="company", business_name="Alice's Grocer", category="merchant")
    fund(people.admin, people.alice.user["wallet_id"], 5_000)
    code = _ok(shop.post("/v1/merchant/qr", {"amount": 1_500, "reference": "order 5"}), 201)
    payment = _ok(people.alice.post("/v1/qr-payments", {"qr_payload": code["qr_payload"]}), 201)
    return shop, people.alice, payment


def qr_payment(people: People) -> Owned:
    shop, alice, payment = _shop_sale(people)
    seen = _ok(alice.get(f"/v1/qr-payments/{payment['id']}"))

    def is_unchanged() -> None:
        assert [_ok(party.get(f"/v1/qr-payments/{payment['id']}")) for party in (alice, shop)] == [
            seen, seen]

    return Owned(payment["id"], str(uuid.uuid4()), (alice, shop), is_unchanged)


def merchant_payment(people: People) -> Owned:
    """A payment the merchant received: only it (and its server) may read or refund it."""
    shop, alice, payment = _shop_sale(people)
    seen = _ok(shop.get(f"/v1/merchant/payments/{payment['id']}"))
    balances = (alice.balance(), shop.balance())

    def is_unchanged() -> None:
        assert _ok(shop.get(f"/v1/merchant/payments/{payment['id']}")) == seen
        assert (alice.balance(), shop.balance()) == balances

    return Owned(payment["id"], str(uuid.uuid4()), (shop,), is_unchanged,
                 callers=(people.merchant, people.merchant_server))


def qr_code(people: People) -> Owned:
    shop = register(people.url, kind="company", business_name="Alice's Grocer", category="merchant")
    code = _ok(shop.post("/v1/merchant/qr", {"amount": 900}), 201)

    def is_unchanged() -> None:
        assert _ok(shop.get(f"/v1/merchant/qr/{code['id']}"))["qr_payload"] == code["qr_payload"]

    return Owned(code["id"], str(uuid.uuid4()), (shop,), is_unchanged, callers=(people.merchant,))


def api_key(people: People) -> Owned:
    shop = register(people.url, kind="company", business_name="Alice's Grocer", category="merchant")
    key = _ok(shop.post("/v1/merchant/api-keys", {"name": "till"}), 201)

    def is_unchanged() -> None:
        assert Client(people.url, key["secret"]).get("/v1/merchant/payments").status_code == 200
        assert _ok(shop.get("/v1/merchant/api-keys"))["data"][0]["revoked_at"] is None

    return Owned(key["id"], str(uuid.uuid4()), (shop,), is_unchanged, callers=(people.merchant,))


def webhook_endpoint(people: People) -> Owned:
    shop = register(people.url, kind="company", business_name="Alice's Grocer", category="merchant")
    endpoint = _ok(shop.post("/v1/merchant/webhook-endpoints", {
        "url": "https://93.184.215.14/gopay", "events": ["payment.succeeded"]}), 201)

    def is_unchanged() -> None:
        listed = _ok(shop.get("/v1/merchant/webhook-endpoints"))["data"]
        assert [e["id"] for e in listed] == [endpoint["id"]]

    return Owned(endpoint["id"], str(uuid.uuid4()), (shop,), is_unchanged,
                 callers=(people.merchant,))


def scheduled_payout(people: People) -> Owned:
    """A payout a merchant's schedule made, pending (this GoPay's PSP never answers)."""
    shop = register(people.url, kind="company", business_name="Alice's Grocer", category="merchant")
    fund(people.admin, shop.user["wallet_id"], 2_000)
    account = f"{uuid.uuid4().int % 10**10:010d}"
    saved = _ok(shop.post("/v1/payment-methods", {"type": "bank_account", "bank_account": {
        "iban": "DE" + iban.calc_check_digits("DEXX37040044" + account) + "37040044" + account,
        "holder_name": "Alice's Grocer"}}), 201)
    _ok(shop.http.put("/v1/merchant/payout-schedule", json={
        "frequency": "daily", "minimum": 100, "payment_method_id": saved["id"]}))
    deadline = time.monotonic() + 20
    while not (made := _ok(shop.get("/v1/merchant/payouts"))["data"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    [payout] = made
    seen = _ok(shop.get(f"/v1/merchant/payouts/{payout['id']}"))
    wallet = _ok(shop.get("/v1/wallet"))

    def is_unchanged() -> None:
        assert _ok(shop.get(f"/v1/merchant/payouts/{payout['id']}")) == seen
        assert _ok(shop.get("/v1/wallet")) == wallet

    return Owned(payout["id"], str(uuid.uuid4()), (shop,), is_unchanged, callers=(people.merchant,))


def cash_out(people: People) -> Owned:
    """Alice's cash-out at the agent, waiting for its code."""
    made, is_unchanged = _cash_out(people)
    return Owned(made["id"], str(uuid.uuid4()), (people.alice, people.agent), is_unchanged)


def cash_out_code(people: People) -> Owned:
    """The code of Alice's cash-out, which only the agent she chose may enter."""
    made, is_unchanged = _cash_out(people)
    return Owned(made["code"], "0000000000", (people.agent,), is_unchanged,
                 callers=(people.agent, people.rival_agent))


def _cash_out(people: People) -> tuple[dict[str, Any], Callable[[], None]]:
    alice, agent = people.alice, people.agent
    fund(people.admin, alice.user["wallet_id"], 1_000)
    made = _ok(alice.post("/v1/cash-outs", {"agent_id": agent.user["id"], "amount": 1_000,
                                            "currency": "USD"}), 201)
    seen = _ok(alice.get(f"/v1/cash-outs/{made['id']}"))
    state = (_wallet(alice), _wallet(agent))

    def is_unchanged() -> None:
        assert [_ok(party.get(f"/v1/cash-outs/{made['id']}")) for party in (alice, agent)] == [
            seen, seen]
        assert seen["status"] == "pending" and seen["attempts_left"] == 3
        assert (_wallet(alice), _wallet(agent)) == state

    return made, is_unchanged


def payment_request(people: People) -> Owned:
    """Alice asks Bob for money."""
    alice, bob = people.alice, people.bob
    fund(people.admin, bob.user["wallet_id"], 1_000)
    asked = _ok(alice.post("/v1/payment-requests", {"payer": bob.user["email"], "amount": 500,
                                                    "currency": "USD"}), 201)
    seen = {party.user["id"]: _ok(party.get(f"/v1/payment-requests/{asked['id']}"))
            for party in (alice, bob)}
    balances = (alice.balance(), bob.balance())

    def is_unchanged() -> None:
        assert {party.user["id"]: _ok(party.get(f"/v1/payment-requests/{asked['id']}"))
                for party in (alice, bob)} == seen
        assert seen[alice.user["id"]]["status"] == "open"
        assert (alice.balance(), bob.balance()) == balances

    return Owned(asked["id"], str(uuid.uuid4()), (alice, bob), is_unchanged)


def _card(client: Client) -> str:
    """A card of its own for each case."""
    payload = "4" + f"{uuid.uuid4().int % 10**14:014d}"
    return _ok(client.post("/v1/payment-methods", {"type": "card", "card": {
        "number": payload + luhn.calc_check_digit(payload), "exp_month": 12,
        "exp_year": datetime.now(UTC).year + 3, "cvc": "123", "holder_name": "Alice"}}), 201)["id"]


def _wallet(client: Client) -> dict[str, Any]:
    return _ok(client.get("/v1/wallet"))


def notification(people: People) -> Owned:
    """A notice of Alice's (Bob paid her): nobody else may read it or mark it read."""
    alice, bob = people.alice, people.bob
    fund(people.admin, bob.user["wallet_id"], 5_000)
    _ok(bob.post("/v1/transfers", {"recipient": alice.user["email"], "amount": 321,
                                   "currency": "USD"}), 201)
    notice = _ok(alice.get("/v1/notifications?unread=true"))["data"][0]

    def is_unchanged() -> None:
        assert _ok(alice.get(f"/v1/notifications/{notice['id']}")) == notice

    return Owned(notice["id"], str(uuid.uuid4()), (alice,), is_unchanged)


def support_ticket(people: People) -> Owned:
    """Alice's ticket about her transfer to Bob: only she may read it or write to it (Bob,
    a party to the transfer, is not one to her ticket)."""
    alice = people.alice
    fund(people.admin, alice.user["wallet_id"], 1_000)
    sent = _ok(alice.post("/v1/transfers", {"recipient": people.bob.user["email"], "amount": 100,
                                            "currency": "USD"}), 201)
    ticket = _ok(alice.post("/v1/support/tickets", {"subject": "Wrong amount", "body": "Help",
                                                    "transaction_id": sent["id"]}), 201)

    def is_unchanged() -> None:
        assert _ok(alice.get(f"/v1/support/tickets/{ticket['id']}")) == ticket

    return Owned(ticket["id"], str(uuid.uuid4()), (alice,), is_unchanged)


def dispute(people: People) -> Owned:
    """Alice's dispute of her transfer to Bob: only the two of them may read it, and nobody
    else may send evidence (Bob's to send, as the payee)."""
    alice, bob = people.alice, people.bob
    fund(people.admin, alice.user["wallet_id"], 1_000)
    sent = _ok(alice.post("/v1/transfers", {"recipient": bob.user["email"], "amount": 300,
                                            "currency": "USD"}), 201)
    opened = _ok(alice.post("/v1/disputes", {"transaction_id": sent["id"], "reason": "not mine",
                                             "amount": 100}), 201)
    shown = _ok(alice.get(f"/v1/disputes/{opened['id']}"))

    def is_unchanged() -> None:
        assert _ok(alice.get(f"/v1/disputes/{opened['id']}")) == shown

    return Owned(opened["id"], str(uuid.uuid4()), (alice, bob), is_unchanged)


# Every id-taking endpoint a customer may call: what it is called on, and with what body.
CASES: dict[tuple[str, str], tuple[Callable[[People], Owned], dict[str, Any] | None]] = {
    ("GET", "/v1/payment-methods/{method_id}"): (payment_method, None),
    ("DELETE", "/v1/payment-methods/{method_id}"): (payment_method, None),
    ("POST", "/v1/me/devices/{device_id}/lock"): (device, {"wipe": True}),
    # With the caller's own, right password: only whose device it is may refuse them.
    ("POST", "/v1/me/devices/{device_id}/reenroll"): (device, {"password": PASSWORD}),
    ("GET", "/v1/transfers/{transfer_id}"): (transfer, None),
    ("GET", "/v1/topups/{order_id}"): (top_up, None),
    ("GET", "/v1/payouts/{order_id}"): (payout, None),
    ("GET", "/v1/qr-payments/{payment_id}"): (qr_payment, None),
    ("GET", "/v1/merchant/payments/{payment_id}"): (merchant_payment, None),
    ("POST", "/v1/payments/{payment_id}/refunds"): (merchant_payment, {"amount": 100}),
    ("GET", "/v1/merchant/qr/{qr_id}"): (qr_code, None),
    ("GET", "/v1/merchant/qr/{qr_id}.png"): (qr_code, None),
    ("DELETE", "/v1/merchant/api-keys/{key_id}"): (api_key, None),
    ("DELETE", "/v1/merchant/webhook-endpoints/{endpoint_id}"): (webhook_endpoint, None),
    ("GET", "/v1/merchant/payouts/{payout_id}"): (scheduled_payout, None),
    ("GET", "/v1/bill-payments/{payment_id}"): (bill_payment, None),
    ("GET", "/v1/recharges/{recharge_id}"): (recharge, None),
    ("GET", "/v1/cash-outs/{cash_out_id}"): (cash_out, None),
    ("POST", "/v1/cash-outs/{cash_out_id}/cancel"): (cash_out, None),
    ("POST", "/v1/agent/cash-outs/{code}/confirm"): (cash_out_code, None),
    ("GET", "/v1/payment-requests/{request_id}"): (payment_request, None),
    ("POST", "/v1/payment-requests/{request_id}/pay"): (payment_request, None),
    ("POST", "/v1/payment-requests/{request_id}/decline"): (payment_request, None),
    ("POST", "/v1/payment-requests/{request_id}/cancel"): (payment_request, None),
    ("GET", "/v1/notifications/{notification_id}"): (notification, None),
    ("POST", "/v1/notifications/{notification_id}/read"): (notification, None),
    ("GET", "/v1/support/tickets/{ticket_id}"): (support_ticket, None),
    ("POST", "/v1/support/tickets/{ticket_id}/messages"): (support_ticket, {"body": "Me too"}),
    ("GET", "/v1/disputes/{dispute_id}"): (dispute, None),
    ("POST", "/v1/disputes/{dispute_id}/evidence"): (dispute, {"text": "a receipt"}),
}


@pytest.fixture(scope="module")
def server_env(server_env: dict[str, str]) -> dict[str, str]:
    """The e2e server's environment, with a PSP (and operators' gateway) address where nothing
    listens: no request of this test reaches a server it did not start. The payout schedules'
    job runs every second, so a schedule's payout is there at once."""
    return {**server_env, "GOPAY_PSP_URL": f"http://127.0.0.1:{free_port()}",
            "GOPAY_MERCHANT_PAYOUT_INTERVAL_SECONDS": "1"}


@pytest.fixture(scope="module")
def people(server, admin: Client) -> People:  # type: ignore[no-untyped-def]
    merchant = register(server.url, kind="company", business_name="Corner Shop",
                        category="merchant")
    key = _ok(merchant.post("/v1/merchant/api-keys", {"name": "corner shop server"}), 201)
    return People(url=server.url, admin=admin, alice=register(server.url),
                  bob=register(server.url), mallory=register(server.url), merchant=merchant,
                  merchant_server=Client(server.url, key["secret"]),
                  agent=register(server.url, kind="agent"),
                  rival_agent=register(server.url, kind="agent"))


def call(client: Client, operation: tuple[str, str], object_id: str,
         body: dict[str, Any] | None) -> httpx.Response:
    method, path = operation
    return client.http.request(method, re.sub(r"\{\w+\}", object_id, path), json=body)


class TestEveryIdEndpointIsCovered:
    def test_the_cases_are_exactly_the_apis_id_endpoints(self, server) -> None:  # type: ignore[no-untyped-def]
        """A new endpoint that takes an id fails here until it has a case below."""
        paths = _ok(httpx.get(f"{server.url}/openapi.json"))["paths"]
        taking_ids = {(method.upper(), path) for path, item in paths.items() if "{" in path
                      for method in item if method in HTTP_METHODS}
        assert taking_ids >= PUBLIC
        customers = {op for op in taking_ids if not op[1].startswith(STAFF_ONLY)}
        assert customers - PUBLIC - NOT_IDS == set(CASES)


class TestAnotherUsersId:
    @pytest.mark.parametrize("operation", sorted(CASES), ids=" ".join)
    def test_is_not_found_and_changes_nothing(self, people: People, operation) -> None:  # type: ignore[no-untyped-def]
        """Anyone but its parties gets the 404 `not_found` an unknown id gets; the object stays."""
        make, body = CASES[operation]
        owned = make(people)
        owned.is_unchanged()
        strangers = [c for c in owned.callers or people.customers if c not in owned.parties]
        assert strangers
        for stranger in strangers:
            answer = call(stranger, operation, owned.id, body)
            assert answer.status_code == 404, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["code"] == "not_found"
            unknown = call(stranger, operation, owned.unknown_id, body)
            assert _problem(answer, owned.id) == _problem(unknown, owned.unknown_id)
            owned.is_unchanged()


def _problem(answer: httpx.Response, object_id: str) -> tuple[int, Any]:
    """The answer with the id it names blanked out: what it tells beyond the id itself."""
    return answer.status_code, json.loads(answer.text.replace(object_id, "{id}"))
