"""Statements and sales reports over HTTP: what a customer downloads and a merchant's server reads."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pypdf
import pytest

from tests.conftest import new_database
from tests.merchants import api_key, merchant, pay, qr_code, refund
from tests.support import Client, GoPayServer, fund, gopay_env, register, staff

# GoPay keeps 2.5 % of each QR payment (the merchant pays it) and 10 of each refund.
FEE_BPS, REFUND_FEE = 250, 10
FEES = {"qr_payment": {"fixed": 0, "bps": FEE_BPS, "paid_by": "payee"},
        "refund": {"fixed": REFUND_FEE, "bps": 0, "paid_by": "payer"}}


@pytest.fixture(scope="module")
def server_env(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return gopay_env(new_database(postgres_server), tmp_path_factory.mktemp("var"),
                     GOPAY_FEES=json.dumps(FEES), GOPAY_FRAUD_SCREENING="monitor")


@pytest.fixture(scope="module")
def server(server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[GoPayServer]:
    running = GoPayServer.create(server_env, tmp_path_factory.mktemp("logs") / "serve.log").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def admin(server: GoPayServer, server_env: dict[str, str]) -> Client:
    return staff(server.url, server_env, "admin")


def problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def statement(client: Client, month: str, format: str) -> httpx.Response:
    return client.get(f"/v1/wallet/statements/{month}", params={"format": format})


def month_of(line: dict[str, Any]) -> str:
    return line["created_at"][:7]


def major(amount: int) -> str:
    return f"{amount // 100}.{amount % 100:02d}"


class TestStatements:
    def test_the_month_s_lines_and_balances_in_csv_and_pdf(self, server: GoPayServer,
                                                           admin: Client) -> None:
        """Exactly the month's lines of the history, opening where the month before ended,
        closing at the balance after its last line, in both formats."""
        ada = register(server.url, full_name="Ada Statement")
        bob = register(server.url)
        fund(admin, ada.user["wallet_id"], 10_000)
        for amount, note in ((2_500, "rent"), (1_234, "groceries")):
            sent = ada.post("/v1/transfers", {"recipient": bob.user["wallet_id"], "amount": amount,
                                              "currency": "USD", "note": note})
            assert sent.status_code == 201, sent.text
        history = list(reversed(ada.history()))
        month = month_of(history[-1])
        lines = [line for line in history if month_of(line) == month]
        earlier = [line for line in history if month_of(line) < month]
        opening = earlier[-1]["balance_after"] if earlier else 0

        answer = statement(ada, month, "csv")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        assert (rows[0]["type"], rows[0]["balance"]) == ("opening_balance", major(opening))
        assert [(row["transaction_id"], row["type"], row["money_in"] or row["money_out"],
                 row["balance"], row["reference"]) for row in rows[1:-1]] == [
            (line["id"], line["type"], major(line["amount"]), major(line["balance_after"]),
             line["reference"]) for line in lines]
        assert (rows[-1]["type"], rows[-1]["balance"]) == ("closing_balance", major(ada.balance()))

        answer = statement(ada, month, "pdf")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/pdf"
        text = "\n".join(page.extract_text() for page in pypdf.PdfReader(
            io.BytesIO(answer.content)).pages)
        for expected in ("Ada Statement", ada.user["wallet_id"], "rent", "groceries",
                         f"Opening balance on {month}-01 {major(opening)} USD",
                         f"Closing balance so far {major(ada.balance())} USD", "-25.00 USD",
                         "-12.34 USD", "+100.00 USD"):
            assert expected in text, expected

    def test_a_month_before_any_activity_is_empty_at_zero(self, server: GoPayServer,
                                                          admin: Client) -> None:
        ada = register(server.url)
        fund(admin, ada.user["wallet_id"], 500)
        answer = statement(ada, "2025-01", "csv")
        assert answer.status_code == 200, answer.text
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        assert [(row["type"], row["balance"]) for row in rows] == [
            ("opening_balance", "0.00"), ("closing_balance", "0.00")]
        text = pypdf.PdfReader(io.BytesIO(statement(ada, "2025-01", "pdf").content)).pages[0]
        assert "No transactions in this period." in text.extract_text()

    @pytest.mark.parametrize("month", ["2026-13", "2026-00", "abc", "2026-1", "99999-01",
                                       "2026-02-01", "1999-12", "0000-01",
                                       "9999-01"])
    def test_bad_months_are_refused(self, server: GoPayServer, month: str) -> None:
        """Not a month, or one nobody can have a statement of: 422, never a 500."""
        problem(statement(register(server.url), month, "csv"), 422, "validation_error")

    def test_bad_format_and_callers_are_refused(self, server: GoPayServer) -> None:
        ada = register(server.url)
        problem(statement(ada, "2026-01", "xml"), 422, "validation_error")
        problem(statement(Client(server.url), "2026-01", "csv"), 401, "unauthenticated")
        key, _ = api_key(merchant(server.url))  # a merchant's server key is no person's token
        problem(statement(key, "2026-01", "csv"), 401, "unauthenticated")


def sales(client: Client, **params: str) -> httpx.Response:
    return client.get("/v1/merchant/reports/sales", params=params)


class TestSalesReport:
    def test_figures_are_what_was_paid_refunded_and_charged(self, server: GoPayServer,
                                                            admin: Client) -> None:
        """Per day, in JSON and CSV alike, by the merchant and by its API key; another
        merchant's sales are not there."""
        shop, other_shop = merchant(server.url, "Corner Shop"), merchant(server.url, "Other Shop")
        ada = register(server.url)
        fund(admin, ada.user["wallet_id"], 100_000)
        before = datetime.now(UTC).date()
        amounts = (10_000, 4_000, 1_200)
        payments = []
        for amount in amounts:
            paid = pay(ada, qr_code(shop, amount))
            assert paid.status_code == 201, paid.text
            payments.append(paid.json())
        refunds = (2_500, 1_200)
        for payment, amount in zip((payments[0], payments[2]), refunds, strict=True):
            assert refund(shop, payment["id"], amount).status_code == 201
        assert pay(ada, qr_code(other_shop, 777)).status_code == 201
        after = datetime.now(UTC).date()

        fees = sum(amount * FEE_BPS // 10_000 for amount in amounts) + REFUND_FEE * len(refunds)
        expected = {"count": 3, "gross": sum(amounts), "refunds": sum(refunds), "fees": fees,
                    "net": sum(amounts) - sum(refunds) - fees}
        first = before - timedelta(days=2)
        answer = sales(shop, **{"from": first.isoformat(), "to": after.isoformat()})
        assert answer.status_code == 200, answer.text
        report = answer.json()
        assert (report["from"], report["to"], report["currency"]) == (
            first.isoformat(), after.isoformat(), "USD")
        assert [day["date"] for day in report["data"]] == [
            (first + timedelta(days=n)).isoformat() for n in range((after - first).days + 1)]
        assert {key: report["totals"][key] for key in expected} == expected
        if before == after:  # every figure on today's line (unless the test crossed midnight)
            today = report["data"][-1]
            assert {key: today[key] for key in expected} == expected
            assert all(day["count"] == day["gross"] == 0 for day in report["data"][:-1])

        as_csv = sales(shop, **{"from": first.isoformat(), "to": after.isoformat(),
                                "format": "csv"})
        assert as_csv.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert [{key: row[key] for key in ("date", *expected)} for row in rows] == [
            {"date": day["date"], **{key: str(day[key]) for key in expected}}
            for day in report["data"]]

        key_client, _ = api_key(shop)
        assert sales(key_client, **{"from": first.isoformat(), "to": after.isoformat()}
                     ).json() == report
        theirs = sales(other_shop, **{"from": first.isoformat(), "to": after.isoformat()}).json()
        assert (theirs["totals"]["count"], theirs["totals"]["gross"]) == (1, 777)

    def test_without_a_range_it_is_the_last_30_days(self, server: GoPayServer) -> None:
        report = sales(merchant(server.url)).json()
        assert len(report["data"]) == 30
        assert date.fromisoformat(report["to"]) >= datetime.now(UTC).date() - timedelta(days=1)

    def test_people_and_billers_are_not_merchants(self, server: GoPayServer) -> None:
        """As on the other merchant routes: 403."""
        problem(sales(register(server.url)), 403, "forbidden")
        biller = register(server.url, kind="company", business_name="Water Co", category="biller")
        problem(sales(biller), 403, "forbidden")
        problem(sales(Client(server.url)), 401, "unauthenticated")

    @pytest.mark.parametrize("params", [
        {"from": "2026-03-02", "to": "2026-03-01"}, {"from": "2026-02-30", "to": "2026-03-01"},
        {"from": "abc"}, {"to": "2026-3-1"}, {"from": "2024-01-01", "to": "2025-12-31"},
        {"from": "2026-01-01", "to": "2026-01-31", "format": "pdf"},
        {"from": "0001-01-01", "to": "0001-01-02"}, {"from": "9999-12-31", "to": "9999-12-31"}])
    def test_bad_ranges_are_refused(self, server: GoPayServer, params: dict[str, str]) -> None:
        """Not dates, backwards, longer than 366 days, or a format it does not speak: 422."""
        problem(sales(merchant(server.url), **params), 422, "validation_error")


def test_paths_are_documented(server: GoPayServer) -> None:
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert "/v1/wallet/statements/{month}" in paths and "/v1/merchant/reports/sales" in paths

