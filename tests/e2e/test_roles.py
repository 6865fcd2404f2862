"""Every endpoint checks the caller's role: the whole role-by-endpoint table, tried for real."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from gopay.aggregates.fraud import RuleSet
from tests.support import PASSWORD, Client, login, register, staff

# "company" is a merchant; "merchant_api_key" is its server, calling with an sk_live_ key.
ROLES = ("anonymous", "person", "company", "agent", "merchant_api_key",
         "admin", "sub_admin", "auditor", "finance", "support")
CUSTOMERS = {"person", "company", "agent"}
# Without a session: answered 401 where they are not let through.
TOKENLESS = {"anonymous", "merchant_api_key"}
STAFF = {"admin", "sub_admin", "auditor", "finance", "support"}
SIGNED_IN = CUSTOMERS | STAFF

# endpoint -> the roles it lets through (everyone else: 401 when anonymous, else 403)
ALLOWED: dict[str, set[str]] = {
    "GET /v1/me": SIGNED_IN,
    "PATCH /v1/me": SIGNED_IN,
    "GET /v1/companies": SIGNED_IN,
    "GET /v1/transfers/{id}": SIGNED_IN,  # then 404 unless a party to it
    "GET /v1/wallet": CUSTOMERS,
    "GET /v1/wallet/transactions": CUSTOMERS,
    "POST /v1/transfers": CUSTOMERS,
    "POST /v1/payment-methods": CUSTOMERS,
    "GET /v1/payment-methods": CUSTOMERS,
    "GET /v1/payment-methods/{id}": CUSTOMERS,  # then 404 unless their own
    "DELETE /v1/payment-methods/{id}": CUSTOMERS,
    "GET /v1/admin/users": {"admin", "sub_admin", "auditor", "support"},
    "POST /v1/admin/users/{id}/freeze": {"admin", "sub_admin"},
    "POST /v1/admin/users/{id}/unfreeze": {"admin", "sub_admin"},
    "POST /v1/admin/adjustments": {"admin"},
    "POST /v1/admin/users/{id}/kyc": {"admin", "sub_admin"},
    "POST /v1/admin/staff/{id}/role": {"admin"},  # then 422: the target is no staff member
    "GET /v1/admin/users/{id}/security-events": {"admin", "sub_admin", "auditor", "support"},
    "POST /v1/me/kyc": CUSTOMERS,
    "GET /v1/me/devices": SIGNED_IN,
    "POST /v1/me/devices/{device}/lock": SIGNED_IN,  # then 404: nobody signed in on it
    "POST /v1/me/devices/{device}/reenroll": SIGNED_IN,
    "POST /v1/auth/2fa/setup": SIGNED_IN,
    "POST /v1/auth/2fa/enable": SIGNED_IN,
    "POST /v1/auth/2fa/disable": SIGNED_IN,
    "POST /v1/auth/2fa/recovery-codes": SIGNED_IN,
    "POST /v1/auth/logout": SIGNED_IN,
    "GET /v1/fees": SIGNED_IN,
    "POST /v1/qr-payments": {"person"},
    "GET /v1/qr-payments/{id}": CUSTOMERS,  # then 404 unless the payer or the merchant
    "POST /v1/merchant/qr": {"company", "merchant_api_key"},
    "GET /v1/merchant/qr/{id}": {"company"},  # then 404 unless its own
    "GET /v1/merchant/qr/{id}.png": {"company"},
    "GET /v1/merchant/payments": {"company", "merchant_api_key"},
    "GET /v1/merchant/payments/{id}": {"company", "merchant_api_key"},
    "POST /v1/payments/{id}/refunds": {"company", "merchant_api_key"},
    "POST /v1/merchant/api-keys": {"company"},
    "GET /v1/merchant/api-keys": {"company"},
    "DELETE /v1/merchant/api-keys/{id}": {"company"},
    "POST /v1/merchant/webhook-endpoints": {"company"},  # then 422: a loopback address
    "GET /v1/merchant/webhook-endpoints": {"company"},
    "DELETE /v1/merchant/webhook-endpoints/{id}": {"company"},
    "GET /v1/merchant/webhook-deliveries": {"company"},
    "PUT /v1/merchant/payout-schedule": {"company"},  # then 404: no such bank account
    "GET /v1/merchant/payout-schedule": {"company"},  # then 404: none set
    "DELETE /v1/merchant/payout-schedule": {"company"},  # then 404: none active
    "GET /v1/merchant/payouts": {"company"},
    "GET /v1/merchant/payouts/{id}": {"company"},  # then 404 unless its own
    "GET /v1/merchant/reports/sales": {"company", "merchant_api_key"},
    "GET /v1/wallet/statements/2026-01": CUSTOMERS,
    "GET /v1/billers": SIGNED_IN,
    "POST /v1/bill-payments": CUSTOMERS,  # then 404: no such biller
    "GET /v1/bill-payments/{id}": CUSTOMERS,  # then 404 unless their own
    "POST /v1/admin/billers": {"admin"},
    "GET /v1/admin/billers/{id}": {"admin", "finance", "auditor"},  # then 404: no such biller
    "PUT /v1/admin/billers/{id}/bank-account": {"admin"},
    "GET /v1/admin/billers/{id}/transactions": {"admin", "finance", "auditor"},
    "POST /v1/admin/billers/{id}/settlements": {"admin", "finance"},
    "GET /v1/admin/billers/{id}/settlements/{id}": {"admin", "finance", "auditor"},
    "GET /v1/operators": SIGNED_IN,
    "POST /v1/admin/operators": {"admin"},
    "POST /v1/recharges": CUSTOMERS,  # then 404: no such operator
    "GET /v1/recharges/{id}": CUSTOMERS,  # then 404 unless their own
    "POST /v1/agent/cash-ins": {"agent"},  # then 422: the agent has no float
    "POST /v1/agent/cash-outs/{code}/confirm": {"agent"},  # then 404: no cash-out has the code
    "POST /v1/cash-outs": {"person"},  # then 404: the target is no agent
    "GET /v1/cash-outs/{id}": CUSTOMERS,  # then 404 unless a party to it
    "POST /v1/cash-outs/{id}/cancel": CUSTOMERS,  # then 404 unless the customer's own
    "POST /v1/payment-requests": CUSTOMERS,
    "GET /v1/payment-requests": CUSTOMERS,
    "GET /v1/payment-requests/{id}": CUSTOMERS,  # then 404 unless a party to it
    "POST /v1/payment-requests/{id}/pay": CUSTOMERS,  # then 404 unless asked to pay it
    "POST /v1/payment-requests/{id}/decline": CUSTOMERS,
    "POST /v1/payment-requests/{id}/cancel": CUSTOMERS,  # then 404 unless its requester
    # Reconciliation is finance's (then 422 without a file, 404 for the target's id).
    "POST /v1/reconciliation/runs": {"finance"},
    "GET /v1/reconciliation/runs": {"finance"},
    "GET /v1/reconciliation/runs/{id}": {"finance"},
    "GET /v1/reconciliation/runs/{id}/items": {"finance"},
    "GET /v1/reconciliation/runs/{id}/report": {"finance"},
    "POST /v1/reconciliation/items/{id}/suspense": {"finance"},
    "GET /v1/reconciliation/payouts": {"finance"},
    # Maker-checker adjustments: admins and finance (approving: then 404 for the target's id).
    "POST /v1/admin/adjustment-proposals": {"admin", "finance"},
    "GET /v1/admin/adjustment-proposals": {"admin", "finance"},
    "GET /v1/admin/adjustment-proposals/{id}": {"admin", "finance"},
    "POST /v1/admin/adjustment-proposals/{id}/approve": {"admin", "finance"},
    "POST /v1/admin/adjustment-proposals/{id}/reject": {"admin", "finance"},
    # Notifications: everyone signed in has an inbox (then 404 for the target's id). The live
    # stream never ends by itself: its 401 is in tests/e2e/test_notifications.py.
    "GET /v1/notifications": SIGNED_IN,
    "GET /v1/notifications/unread-count": SIGNED_IN,
    "GET /v1/notifications/{id}": SIGNED_IN,
    "POST /v1/notifications/{id}/read": SIGNED_IN,
    # Fraud screening: the review queue (deciding: then 404 for the target's id), the rules.
    "GET /v1/admin/reviews": {"admin", "sub_admin", "support"},
    "POST /v1/admin/reviews/{id}/approve": {"admin", "sub_admin", "support"},
    "POST /v1/admin/reviews/{id}/reject": {"admin", "sub_admin", "support"},
    "GET /v1/admin/fraud-rules": {"admin"},
    "PUT /v1/admin/fraud-rules": {"admin"},
    # Support tickets: customers open and write (then 404 for the target's id), support staff
    # reply, assign and close, auditors only read.
    "POST /v1/support/tickets": CUSTOMERS,
    "GET /v1/support/tickets": CUSTOMERS,
    "GET /v1/support/tickets/{id}": CUSTOMERS | {"admin", "support", "auditor"},
    "POST /v1/support/tickets/{id}/messages": CUSTOMERS | {"admin", "support"},
    "GET /v1/admin/tickets": {"admin", "support", "auditor"},
    "POST /v1/admin/tickets/{id}/assign": {"admin", "support"},
    "POST /v1/admin/tickets/{id}/close": {"admin", "support"},
    # Business analytics: the API.md roles, and auditors, who see everything.
    "GET /v1/admin/analytics": {"admin", "sub_admin", "finance", "auditor"},
}


@pytest.fixture(scope="module")
def callers(server, server_env) -> dict[str, Client]:  # type: ignore[no-untyped-def]
    found: dict[str, Client] = {"anonymous": Client(server.url)}
    found["person"] = register(server.url)
    found["company"] = register(server.url, kind="company", business_name="Shop",
                                category="merchant")
    found["agent"] = register(server.url, kind="agent")
    key = found["company"].post("/v1/merchant/api-keys", {"name": "role table"})
    assert key.status_code == 201, key.text
    found["merchant_api_key"] = Client(server.url, key.json()["secret"])
    for role in STAFF:
        found[role] = staff(server.url, server_env, role)
    return found


@pytest.fixture(scope="module")
def target(server) -> Client:  # type: ignore[no-untyped-def]
    """The customer that staff endpoints act on."""
    return register(server.url)


def request(endpoint: str, client: Client, target: Client) -> httpx.Response:
    method, path = endpoint.split(" ", 1)
    path = (path.replace("{id}", target.user["id"]).replace("{device}", "some-phone")
            .replace("{code}", "0000000000"))
    if "webhook-deliveries" in path:
        path += f"?endpoint_id={target.user['id']}"
    if path == "/v1/fees":
        path += "?type=transfer&amount=100"
    bodies: dict[str, Callable[[], object]] = {
        "PATCH /v1/me": lambda: {"login_notifications": True},
        "POST /v1/transfers": lambda: {"recipient": target.user["email"], "amount": 1,
                                       "currency": "USD"},
        "POST /v1/payment-methods": lambda: {
            "type": "crypto", "crypto": {"network": "eth",
                                         "address": "0x52908400098527886e0f7030069857d2e4169ee7"}},
        "POST /v1/admin/users/{id}/kyc": lambda: {"decision": "approve"},
        "POST /v1/admin/staff/{id}/role": lambda: {"role": "support"},
        "POST /v1/me/kyc": lambda: {"document_type": "passport", "document_number": "P1234567",
                                    "date_of_birth": "1990-01-01"},
        "POST /v1/me/devices/{device}/lock": lambda: {"wipe": False},
        "POST /v1/me/devices/{device}/reenroll": lambda: {"password": PASSWORD},
        "POST /v1/auth/2fa/enable": lambda: {"otp": "000000"},
        "POST /v1/auth/2fa/disable": lambda: {"otp": "000000"},
        "POST /v1/auth/2fa/recovery-codes": lambda: {"otp": "000000"},
        "POST /v1/qr-payments": lambda: {"qr_payload": "GOPAY1.not.signed"},
        "POST /v1/merchant/qr": lambda: {"amount": 100},
        "POST /v1/payments/{id}/refunds": lambda: {"amount": 1},
        "POST /v1/merchant/api-keys": lambda: {"name": "role table"},
        "PUT /v1/merchant/payout-schedule": lambda: {"frequency": "daily", "minimum": 100,
                                                     "payment_method_id": target.user["id"]},
        "POST /v1/merchant/webhook-endpoints": lambda: {"url": "https://127.0.0.1/hooks",
                                                        "events": ["payment.succeeded"]},
        "POST /v1/bill-payments": lambda: {"biller_id": target.user["id"],
                                           "customer_reference": "ACC-1", "amount": 1,
                                           "currency": "USD"},
        "POST /v1/admin/billers": lambda: {"name": "Role Check Power", "category": "electricity"},
        "PUT /v1/admin/billers/{id}/bank-account": lambda: {"iban": "DE89370400440532013000",
                                                             "holder_name": "Power"},
        "POST /v1/admin/operators": lambda: {"name": "Role Check Telco", "country": "US"},
        "POST /v1/recharges": lambda: {"phone_number": "+12025550143",
                                       "operator_id": target.user["id"], "amount": 1,
                                       "currency": "USD"},
        "POST /v1/agent/cash-ins": lambda: {"customer": target.user["email"], "amount": 1,
                                            "currency": "USD"},
        "POST /v1/cash-outs": lambda: {"agent_id": target.user["id"], "amount": 1,
                                       "currency": "USD"},
        "POST /v1/payment-requests": lambda: {"payer": target.user["email"], "amount": 1,
                                              "currency": "USD"},
        "POST /v1/admin/adjustments": lambda: {
            "wallet_id": target.user["wallet_id"], "direction": "credit", "amount": 1,
            "currency": "USD", "reason": "role table check"},
        "POST /v1/support/tickets": lambda: {"subject": "Role table", "body": "checking"},
        "POST /v1/support/tickets/{id}/messages": lambda: {"body": "checking"},
        "POST /v1/admin/tickets/{id}/assign": lambda: {"staff_id": target.user["id"]},
        # The rules in force, unchanged: the other cases must not meet tighter ones.
        "PUT /v1/admin/fraud-rules": lambda: RuleSet().as_document(),
        # A proposal moves nothing until another staff member approves it.
        "POST /v1/admin/adjustment-proposals": lambda: {
            "account": target.user["wallet_id"], "direction": "credit", "amount": 1,
            "currency": "USD", "reason": "role table check"},
    }
    body = bodies.get(endpoint, lambda: None)()
    return client.http.request(method, path, json=body)


@pytest.mark.parametrize("endpoint", sorted(ALLOWED))
@pytest.mark.parametrize("role", ROLES)
def test_role_table(endpoint: str, role: str, callers: dict[str, Client], target: Client) -> None:
    """The endpoint lets exactly its roles through: 401 without a token (or with a merchant's
    API key where a key is not taken), 403 for other roles."""
    if endpoint == "POST /v1/auth/logout":
        # Logging out ends the session the other cases use: sign in afresh for this one.
        client = callers[role] if role in TOKENLESS else _fresh_session(callers[role])
    else:
        client = callers[role]
    response = request(endpoint, client, target)
    if role in ALLOWED[endpoint]:
        # Let through: anything but 403 or a 401 about the token (a wrong 2FA code is fine).
        refused = response.status_code == 403 or (
            response.status_code == 401 and response.json()["code"] == "unauthenticated")
        assert not refused, (role, endpoint, response.text)
        assert response.status_code < 500
    else:
        expected = 401 if role in TOKENLESS else 403
        assert response.status_code == expected, (role, endpoint, response.text)
        assert response.json()["code"] == ("unauthenticated" if expected == 401 else "forbidden")


def test_only_the_admin_moved_money(callers: dict[str, Client], target: Client) -> None:
    """After the whole table the target holds exactly the admin's one minor unit (the
    customers' transfers and the agent's cash-in found empty wallets, and payment requests
    move nothing until paid); no other role moved anything."""
    [entry] = target.history()
    assert (entry["type"], entry["amount"], entry["balance_after"]) == ("adjustment", 1, 1)


def _fresh_session(client: Client) -> Client:
    return login(client.base_url, client.get("/v1/me").json()["email"], PASSWORD)
