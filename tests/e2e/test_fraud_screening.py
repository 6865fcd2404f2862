"""Fraud screening over HTTP: admins tighten the rules, a payment is held (202) or refused
(422), staff see it in the review queue and approve it once or reject it."""

from __future__ import annotations

from typing import Any

from tests.support import Client, GoPayServer, fund, register, staff


def test_hold_review_and_refuse(server: GoPayServer, server_env: dict[str, str],
                                admin: Client) -> None:
    """The whole story: rules changed, a payment held with its money, approved once, another
    rejected and released, one to a blocked payee refused."""
    alice, bob, blocked = (register(server.url) for _ in range(3))
    fund(admin, alice.user["wallet_id"], 10_000)
    rules = admin.get("/v1/admin/fraud-rules").json()
    rules["sender_velocity"]["max_count"] = 1
    rules["blocked_counterparties"] = [blocked.user["email"]]
    changed = admin.http.put("/v1/admin/fraud-rules", json=rules)
    assert changed.status_code == 200 and changed.json() == rules
    assert admin.get("/v1/admin/fraud-rules").json() == rules

    def send(amount: int, to: Client = bob) -> tuple[int, dict[str, Any]]:
        response = alice.post("/v1/transfers", {"recipient": to.user["email"],
                                                "amount": amount, "currency": "USD"})
        return response.status_code, response.json()

    assert send(100)[0] == 201
    status, held = send(200)
    assert (status, held["status"]) == (202, "held_for_review")
    wallet = alice.get("/v1/wallet").json()
    assert (wallet["balance"], wallet["held"], bob.balance()) == (9_900, 200, 100)

    support = staff(server.url, server_env, "support")
    [review] = support.get("/v1/admin/reviews", params={"status": "open"}).json()["data"]
    assert review["order_id"] == held["id"] and review["amount"] == 200
    assert "payments in 3600 s" in review["reasons"][0]
    assert review["sender_activity"]["payments_last_hour"] == 1
    approved = support.post(f"/v1/admin/reviews/{review['id']}/approve", {"note": "known"})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    again = support.post(f"/v1/admin/reviews/{review['id']}/approve")
    assert (again.status_code, again.json()["code"]) == (409, "invalid_state")
    assert (alice.balance(), bob.balance()) == (9_700, 300)
    assert alice.get(f"/v1/transfers/{held['id']}").json()["status"] == "succeeded"

    status, second = send(400)
    assert status == 202
    [review] = support.get("/v1/admin/reviews", params={"status": "open"}).json()["data"]
    rejected = support.post(f"/v1/admin/reviews/{review['id']}/reject")
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    wallet = alice.get("/v1/wallet").json()
    assert (wallet["balance"], wallet["held"], wallet["available"]) == (9_700, 0, 9_700)
    assert alice.get(f"/v1/transfers/{second['id']}").json()["status"] == "failed"

    status, refused = send(1, to=blocked)
    assert (status, refused["code"]) == (422, "fraud_suspected")
    assert blocked.balance() == 0
