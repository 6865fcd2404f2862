"""Object-level authorization (BOLA): every endpoint that takes an id answers 404 to a customer
who is not party to that object, exactly as for an id that does not exist, and changes nothing."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from stdnum import luhn

from tests.support import PASSWORD, Client, fund, register

HTTP_METHODS = {"get", "put", "post", "patch", "delete"}
# Id-taking paths outside this test: staff-only ones (their roles: tests/e2e/test_roles.py)
# and the lost phone's status, which it asks for without signing in, by design.
STAFF_ONLY = ("/v1/admin/", "/v1/audit/", "/v1/reconciliation/")
PUBLIC = {("GET", "/v1/devices/{device_id}/status")}


@dataclass
class People:
    """Alice owns things; Bob gets money from her; Mallory and a merchant have no part in it."""

    url: str
    admin: Client
    alice: Client
    bob: Client
    mallory: Client
    merchant: Client


@dataclass
class Owned:
    """Something of Alice's: its id, an id like it that names nothing, who may see it, and a
    check that it is as it was (which reads it as its parties, so the id is a real one)."""

    id: str
    unknown_id: str
    parties: tuple[Client, ...]
    is_unchanged: Callable[[], None]


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def payment_method(people: People) -> Owned:
    alice = people.alice
    payload = "4" + f"{uuid.uuid4().int % 10**14:014d}"  # a card of its own for each case
    method = _ok(alice.post("/v1/payment-methods", {"type": "card", "card": {
        "number": payload + luhn.calc_check_digit(payload), "exp_month": 12,
        "exp_year": datetime.now(UTC).year + 3, "cvc": "123", "holder_name": "Alice"}}), 201)

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


def _saved(alice: Client, body: dict[str, Any]) -> str:
    return str(_ok(alice.post("/v1/payment-methods", body), 201)["id"])


def top_up(people: People) -> Owned:
    """Alice's top-up, pending (no PSP answers this server): still only hers to see."""
    alice = people.alice
    payload = "4" + f"{uuid.uuid4().int % 10**14:014d}"
    card = _saved(alice, {"type": "card", "card": {
        "number": payload + luhn.calc_check_digit(payload), "exp_month": 12,
        "exp_year": datetime.now(UTC).year + 3, "cvc": "123", "holder_name": "Alice"}})
    made = alice.post("/v1/topups", {"amount": 500, "currency": "USD", "payment_method_id": card})
    assert made.status_code in (201, 202), made.text
    seen = _ok(alice.get(f"/v1/topups/{made.json()['id']}"))

    def is_unchanged() -> None:
        assert _ok(alice.get(f"/v1/topups/{seen['id']}")) == seen

    return Owned(seen["id"], str(uuid.uuid4()), (alice,), is_unchanged)


def payout(people: People) -> Owned:
    """Alice's payout, its money held while no PSP answers: only hers to see."""
    alice = people.alice
    fund(people.admin, alice.user["wallet_id"], 1_000)
    account = _saved(alice, {"type": "bank_account", "bank_account": {
        "iban": "DE89370400440532013000", "holder_name": "Alice"}})
    made = alice.post("/v1/payouts", {"amount": 300, "currency": "USD",
                                      "payment_method_id": account})
    assert made.status_code in (201, 202), made.text
    seen = _ok(alice.get(f"/v1/payouts/{made.json()['id']}"))

    def is_unchanged() -> None:
        assert _ok(alice.get(f"/v1/payouts/{seen['id']}")) == seen

    return Owned(seen["id"], str(uuid.uuid4()), (alice,), is_unchanged)


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
}


@pytest.fixture(scope="module")
def people(server, admin: Client) -> People:  # type: ignore[no-untyped-def]
    return People(url=server.url, admin=admin, alice=register(server.url),
                  bob=register(server.url), mallory=register(server.url),
                  merchant=register(server.url, kind="company", business_name="Corner Shop",
                                    category="merchant"))


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
        assert {op for op in taking_ids if not op[1].startswith(STAFF_ONLY)} - PUBLIC == set(CASES)


class TestAnotherUsersId:
    @pytest.mark.parametrize("operation", sorted(CASES), ids=" ".join)
    def test_is_not_found_and_changes_nothing(self, people: People, operation) -> None:  # type: ignore[no-untyped-def]
        """Anyone but its parties gets the 404 `not_found` an unknown id gets; the object stays."""
        make, body = CASES[operation]
        owned = make(people)
        owned.is_unchanged()
        strangers = [c for c in (people.alice, people.bob, people.mallory, people.merchant)
                     if c not in owned.parties]
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
