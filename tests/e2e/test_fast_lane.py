"""The payment fast lane answers exactly as the routes do, and passes on what it cannot take.

The fast lane and the route are told apart by `gopay_fast_lane_requests_total{operation, by}`.
The route is reached with a lower-case `bearer` scheme, which HTTP allows and the lane leaves
alone.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.merchants import merchant, qr_code
from tests.support import Client, fund, register

TRANSFER = {"amount": 100, "currency": "USD", "note": "same request, either way"}
# Headers every answer carries whatever it says; the rest must be the same both ways.
VARYING = {"date", "content-length"}


def taken(server, path: str = "/v1/transfers") -> dict[str, float]:  # type: ignore[no-untyped-def]
    """How many requests to `path` the fast lane and the route have answered so far."""
    text = httpx.get(f"{server.url}/metrics").text
    counts = {"fast_lane": 0.0, "route": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name == "gopay_fast_lane_requests":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels["operation"] == f"POST {path}":
                    counts[sample.labels["by"]] = sample.value
    return counts


def both_ways(sender: Client, body: dict[str, object], server, path: str = "/v1/transfers",  # type: ignore[no-untyped-def]
              **headers: str) -> tuple[httpx.Response, httpx.Response]:
    """The same request through the fast lane, then through the route; checks which took each."""
    token = sender.http.headers["Authorization"].split()[1]
    before = taken(server, path)
    fast = sender.post(path, body, headers=headers)
    middle = taken(server, path)
    routed = sender.post(path, body, headers={**headers, "Authorization": f"bearer {token}"})
    after = taken(server, path)
    assert (middle["fast_lane"] - before["fast_lane"], middle["route"] - before["route"]) == (1, 0)
    assert (after["fast_lane"] - middle["fast_lane"], after["route"] - middle["route"]) == (0, 1)
    return fast, routed


def same_headers(first: httpx.Response, second: httpx.Response) -> None:
    names = {name for name in first.headers if name not in VARYING}
    assert names == {name for name in second.headers if name not in VARYING}
    assert all(first.headers[name] == second.headers[name] for name in names)


class TestSameAnswers:
    def test_a_transfer(self, server, admin: Client) -> None:
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 1_000)

        fast, routed = both_ways(alice, {"recipient": bob.user["email"], **TRANSFER}, server)

        assert fast.status_code == routed.status_code == 201, (fast.text, routed.text)
        same_headers(fast, routed)
        mine, theirs = fast.json(), routed.json()
        assert mine.keys() == theirs.keys()
        assert {k: v for k, v in mine.items() if k not in ("id", "created_at")} == {
            k: v for k, v in theirs.items() if k not in ("id", "created_at")}
        assert alice.balance() == 800 and bob.balance() == 200
        for answer in (mine, theirs):
            assert alice.get(f"/v1/transfers/{answer['id']}").json() == answer

    @pytest.mark.parametrize(("change", "status"), [
        ({"amount": 5_000}, 422),  # more than the balance
        ({"recipient": "nobody-here@example.com"}, 404),
        ({"currency": "EUR"}, 422),  # not the wallet's currency
    ])
    def test_a_refusal(self, server, admin: Client, change: dict[str, object], status: int) -> None:
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 1_000)

        fast, routed = both_ways(alice, {"recipient": bob.user["email"], **TRANSFER, **change},
                                 server)

        assert fast.status_code == routed.status_code == status, (fast.text, routed.text)
        same_headers(fast, routed)
        assert fast.json() == routed.json()
        assert alice.balance() == 1_000 and bob.balance() == 0

    def test_a_repeated_key(self, server, admin: Client) -> None:
        """A key the fast lane used answers the same on the route, and moves money once."""
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 1_000)

        fast, routed = both_ways(alice, {"recipient": bob.user["email"], **TRANSFER}, server,
                                 **{"Idempotency-Key": "lunch-on-monday"})

        assert fast.status_code == routed.status_code == 201
        assert fast.json() == routed.json()
        assert alice.balance() == 900 and bob.balance() == 100


class TestQrPayments:
    @pytest.mark.parametrize("amount", [None, 250], ids=["fixed amount", "open amount"])
    def test_a_payment(self, server, admin: Client, amount: int | None) -> None:
        """Two codes alike (a fixed one is paid once), one paid through each way."""
        shop, alice = merchant(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 1_000)
        codes = [qr_code(shop, None if amount else 250, reference="table 4") for _ in range(2)]
        token = alice.http.headers["Authorization"].split()[1]
        body = {**({"amount": amount} if amount else {})}

        before = taken(server, "/v1/qr-payments")
        fast = alice.post("/v1/qr-payments", {"qr_payload": codes[0]["qr_payload"], **body})
        middle = taken(server, "/v1/qr-payments")
        routed = alice.post("/v1/qr-payments", {"qr_payload": codes[1]["qr_payload"], **body},
                            headers={"Authorization": f"bearer {token}"})
        after = taken(server, "/v1/qr-payments")

        assert (middle["fast_lane"] - before["fast_lane"], after["route"] - middle["route"]) == (1, 1)
        assert fast.status_code == routed.status_code == 201, (fast.text, routed.text)
        same_headers(fast, routed)
        mine, theirs = fast.json(), routed.json()
        assert {k: v for k, v in mine.items() if k not in ("id", "created_at")} == {
            k: v for k, v in theirs.items() if k not in ("id", "created_at")}
        assert alice.balance() == 500 and shop.balance() == 500
        for answer in (mine, theirs):
            assert alice.get(f"/v1/qr-payments/{answer['id']}").json() == answer

    @pytest.mark.parametrize(("case", "status"), [
        ("more than the balance", 422), ("a paid fixed code", 409), ("an altered code", 422),
        ("a company paying", 403)])
    def test_a_refusal(self, server, admin: Client, case: str, status: int) -> None:
        shop, alice = merchant(server.url), register(server.url)
        payer = merchant(server.url, "Other Shop") if case == "a company paying" else alice
        fund(admin, alice.user["wallet_id"], 1_000)
        code = qr_code(shop, 5_000 if case == "more than the balance" else 300)
        payload = code["qr_payload"]
        if case == "a paid fixed code":
            assert alice.post("/v1/qr-payments", {"qr_payload": payload}).status_code == 201
        if case == "an altered code":
            payload = payload[:-2] + ("AA" if not payload.endswith("AA") else "BB")
        balances = (alice.balance(), shop.balance())

        fast, routed = both_ways(payer, {"qr_payload": payload}, server, "/v1/qr-payments") \
            if case in ("more than the balance", "a paid fixed code") else (None, None)
        if fast is None:  # the lane leaves these to the route: it answers them in its words
            before = taken(server, "/v1/qr-payments")
            routed = payer.post("/v1/qr-payments", {"qr_payload": payload})
            after = taken(server, "/v1/qr-payments")
            assert (after["fast_lane"] - before["fast_lane"], after["route"] - before["route"]) == (0, 1)
        else:
            assert fast.status_code == status, fast.text
            same_headers(fast, routed)
            assert fast.json() == routed.json()
        assert routed.status_code == status, routed.text
        assert routed.headers["content-type"] == "application/problem+json"
        assert (alice.balance(), shop.balance()) == balances


class TestPassedOn:
    @pytest.mark.parametrize(("headers", "body", "status"), [
        ([("Authorization", "")], None, 401),
        ([("Content-Type", "text/plain")], None, 422),
        ([("GoPay-OTP", "123456")], None, 201),  # not needed here, and the route says so
        ([("Idempotency-Key", "a"), ("Idempotency-Key", "b")], None, 201),
        ([("Idempotency-Key", "k" * 256)], None, 422),
        ([], b'{"recipient": "x", "amount": "100", "currency": "USD"}', 422),
        ([], b'{"recipient": "x", "amount": 100, "currency": "USD"', 422),
        ([], b"[]", 422),
    ])
    def test_what_the_lane_does_not_take(self, server, admin: Client, headers: list[tuple[str, str]],
                                         body: bytes | None, status: int) -> None:
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 1_000)
        plain = httpx.Request("POST", "/v1/transfers",
                              json={"recipient": bob.user["email"], **TRANSFER}).content
        before = taken(server)

        given = {name.lower() for name, _ in headers}
        usual = [("Authorization", alice.http.headers["Authorization"]),
                 ("Content-Type", "application/json")]
        answer = httpx.post(f"{server.url}/v1/transfers", content=body or plain, headers=[
            *(header for header in usual if header[0].lower() not in given), *headers])

        after = taken(server)
        assert answer.status_code == status, answer.text
        assert (after["fast_lane"] - before["fast_lane"], after["route"] - before["route"]) == (0, 1)
        if status >= 400:
            assert answer.headers["content-type"] == "application/problem+json"
            assert alice.balance() == 1_000

    def test_an_ended_session(self, server, admin: Client) -> None:
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 1_000)
        assert alice.post("/v1/auth/logout").status_code == 204
        before = taken(server)

        answer = alice.post("/v1/transfers", {"recipient": bob.user["email"], **TRANSFER})

        assert answer.status_code == 401
        assert taken(server)["route"] - before["route"] == 1
        assert bob.balance() == 0
