"""GoPay keeps its OpenAPI contract: schemathesis sends every operation generated requests.

The document is built from the app as the tests are collected (the schemathesis loader that
reads it from a fixture breaks on pytest 9.2), and the first test checks that the running server
serves that very document at /openapi.json. Every default check of schemathesis runs on each answer:
no 5xx, status code, content type, headers and body as documented, schema-valid requests accepted,
schema-violating ones refused, auth not ignored, `Allow` of a 405 true; plus `problem_details`.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import positive_data_acceptance

from gopay.api.app import create_app
from gopay.settings import Settings
from tests.support import Client, GoPayServer, login, register

# Operations where GoPay checks more than a JSON Schema can say, and refuses a schema-valid
# request with 422 as API.md has it: card numbers pass Luhn and are not expired, IBANs pass
# mod-97; a date of birth is a real one; a transfer needs the money, another recipient and the
# wallet's currency, and so does a payment request (open no longer than the longest allowed);
# a list cursor must be one of the caller's own methods or requests; a QR payload must be one
# GoPay signed; a biller's IBAN passes mod-97; an adjustment's account must exist, hold its
# currency and pair with the entry's other side; a security notice cannot be turned off; a
# support ticket may be about the caller's own transactions only, its list cursors must name a
# ticket the caller may list, and tickets are assigned only to support or admin staff; an
# analytics period runs forwards, within the calendar, for at most a year; a statement's
# month and a sales report's days lie between 2000 and a year ahead, in order.
BUSINESS_RULES = {"PATCH /v1/me", "POST /v1/payment-methods", "GET /v1/payment-methods", "POST /v1/me/kyc",
                  "POST /v1/transfers", "POST /v1/admin/adjustments", "POST /v1/topups",
                  "POST /v1/payouts", "POST /v1/qr-payments", "POST /v1/admin/billers",
                  "POST /v1/payment-requests", "GET /v1/payment-requests",
                  "POST /v1/admin/adjustment-proposals", "POST /v1/support/tickets",
                  "GET /v1/support/tickets", "GET /v1/admin/tickets",
                  "POST /v1/admin/tickets/{ticket_id}/assign", "GET /v1/admin/analytics",
                  "GET /v1/wallet/statements/{month}", "GET /v1/merchant/reports/sales"}
# The PSP's callbacks are signed over their raw body: a schema-valid one without GoPay's
# signature is refused with 400, as API.md has it.
SIGNED = {"POST /v1/psp/webhooks"}
CONFIG = schemathesis.Config.from_dict({
    "seed": 20250101,
    "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
    # No NUL in generated text: GoPay refuses it in any field (PostgreSQL's text cannot hold
    # it), a rule the schema does not state; tests/e2e/test_nul_guard.py tries it everywhere.
    "generation": {"max-examples": 20, "deterministic": True, "database": "none",
                   "allow-x00": False},
    # The coverage phase's valid registrations go through every country of the enum, each an
    # Argon2 hash: 90 s for what fuzzing covers too. Its invalid ones stay.
    "operations": [{"include-name": "POST /v1/auth/register",
                    "phases": {"coverage": {"generation": {"mode": "negative"}}}}],
})
DOCUMENT = create_app(Settings(database_url="postgresql://schema-only/unused")).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
# Operations that take no bearer token (they ignore one): they run anonymously only. (`exclude`
# them, as `include` stops filtering once the config has `operations`.)
PUBLIC_OPERATIONS = sorted(f"{method.upper()} {path}" for path, operations in DOCUMENT["paths"].items()
                           for method, operation in operations.items() if not operation.get("security"))
LOGOUT = "POST /v1/auth/logout"
# The live stream answers for minutes by design; its contract is tests/e2e/test_notifications.py's.
NOT_FUZZED = [*PUBLIC_OPERATIONS, "GET /v1/notifications/stream"]


@pytest.fixture(scope="module")
def customer(server: GoPayServer) -> Client:
    return register(server.url)


def problem_details(ctx: CheckContext, response: Response, case: Case) -> None:
    """Every 4xx and 5xx answer is an RFC 9457 problem with GoPay's stable `code`."""
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.split(";")[0].strip() == "application/problem+json", (
        f"{response.status_code} answered as {content_type!r}")
    body = response.json()
    missing = {"type", "title", "status", "detail", "code"} - set(body)
    assert not missing, f"problem without {sorted(missing)}: {body}"
    assert body["status"] == response.status_code, body


def _has_integral_float(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_integral_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_integral_float(item) for item in value)
    return isinstance(value, float) and value.is_integer()


def schema_valid_data_accepted(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """schemathesis's positive_data_acceptance, where a 422 is right for the business rules above and `1.0`.

    JSON Schema counts 1.0 as an integer; GoPay's contract (API.md) refuses any float amount with 422.
    """
    if response.status_code == 422 and (case.operation.label in BUSINESS_RULES
                                        or _has_integral_float(case.body)):
        return None
    if response.status_code == 400 and case.operation.label in SIGNED:
        return None
    return positive_data_acceptance(ctx, response, case)


def validate(case: Case, server: GoPayServer, headers: dict[str, str] | None = None) -> None:
    case.call_and_validate(base_url=server.url, headers=headers,
                           excluded_checks=[positive_data_acceptance],
                           additional_checks=[schema_valid_data_accepted, problem_details])


def validate_signed_in(case: Case, server: GoPayServer, caller: Client) -> None:
    """Send the case with the caller's token: known only once the server runs, after the cases were made."""
    if case.operation.schema.is_security_param_negated(case):
        # A case about a missing or malformed token goes without one, as schemathesis's own auth does.
        validate(case, server)
        return
    if case.operation.label == LOGOUT:  # it ends a session: one of its own, not the one the others use
        caller = login(server.url, caller.get("/v1/me").json()["email"])
    validate(case, server, {"Authorization": caller.http.headers["Authorization"]})


def test_served_document_is_the_one_fuzzed(server: GoPayServer) -> None:
    """The running server's /openapi.json is the document the contract tests below are generated from."""
    assert httpx.get(f"{server.url}/openapi.json").json() == DOCUMENT


@schema.exclude(name=NOT_FUZZED).parametrize()
def test_as_customer(case: Case, server: GoPayServer, customer: Client) -> None:
    """Signed in as a customer, no request makes GoPay break its contract."""
    validate_signed_in(case, server, customer)


@schema.exclude(name=NOT_FUZZED).parametrize()
def test_as_admin(case: Case, server: GoPayServer, admin: Client) -> None:
    """Signed in as an admin, no request makes GoPay break its contract."""
    validate_signed_in(case, server, admin)


def test_the_callers_stayed_signed_in(customer: Client, admin: Client) -> None:
    """Nothing above ended the sessions the signed-in cases ran in, so they were all signed in."""
    assert customer.get("/v1/me").status_code == 200
    assert admin.get("/v1/me").status_code == 200


@schema.parametrize()
def test_anonymously(case: Case, server: GoPayServer) -> None:
    """Without a token, no request makes GoPay break its contract."""
    validate(case, server)
