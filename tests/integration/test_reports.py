"""Statements and sales reports on PostgreSQL, from lines booked in past months by the real commands.

Every event's timestamp is the machine's time when it is made, so the story moves that time
(time-machine) around each command instead of writing events of its own.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pypdf
import pytest
import time_machine

from gopay.aggregates.money import Money
from gopay.aggregates.user import User
from gopay.commands.adjustment import Adjust, Direction
from gopay.commands.qr_payments import CreateQrCode, PayQrCode
from gopay.commands.refunds import RefundPayment
from gopay.commands.registration import Register
from gopay.commands.transfer import Transfer
from gopay.reports.sales import sales_csv, sales_report
from gopay.reports.statement_files import statement_csv, statement_pdf
from gopay.reports.statements import Statement, monthly_statement
from gopay.settings import Settings
from gopay.system import System
from tests.support import ADMIN, SECRET_KEY, UNLIMITED

# GoPay takes 2.5 % of each QR payment from the merchant, 10 of each refund it gives, and 5 of
# every transfer from the sender (not a cost of sales when a merchant sends one).
FEES = {"qr_payment": {"fixed": 0, "bps": 250, "paid_by": "payee"},
        "refund": {"fixed": 10, "bps": 0, "paid_by": "payer"},
        "transfer": {"fixed": 5, "bps": 0, "paid_by": "payer"}}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(database_url=database_url, var_dir=tmp_path / "var", secret_key=SECRET_KEY,
                    kyc_limits=json.loads(UNLIMITED), fees=FEES, fraud_screening="off")


class Book:
    """People and money in the system, booked at given moments."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.admin = system.commands.run(ADMIN).value

    def at(self, moment: datetime, command: Any) -> Any:
        """Run a command as if at `moment`: the clock of the events' timestamps is moved there."""
        with time_machine.travel(moment, tick=False):
            return self.system.commands.run(command).value

    def person(self, name: str, currency: str = "USD", **fields: Any) -> User:
        email = f"{name.split(maxsplit=1)[0].lower()}@example.com"
        return self.system.commands.run(Register(email=email, password="x" * 12, kind="person",
                                                 full_name=name, currency=currency,
                                                 **fields)).value

    def fund(self, moment: datetime, user: User, amount: int, currency: str = "USD") -> None:
        self.at(moment, Adjust(caller_id=self.admin.id, wallet_id=user.wallet_id,
                               direction=Direction.CREDIT, money=Money(amount, currency),
                               reason="funding", fingerprint="f"))

    def transfer(self, moment: datetime, sender: User, recipient: User, amount: int,
                 note: str = "") -> None:
        """`amount` to `recipient`; the sender also pays the transfer fee of 5."""
        self.at(moment, Transfer(caller_id=sender.id, sender_wallet_id=sender.wallet_id,
                                 recipient=recipient.email, money=Money(amount, "USD"),
                                 note=note, fingerprint="f"))

    def statement(self, user: User, month: str) -> Statement:
        self.system.read_side.catch_up()
        holder = self.system.read_side.directory.user(user.id)
        assert holder is not None
        first = date.fromisoformat(month + "-01")
        return monthly_statement(self.system.read_side.wallets, holder, first,
                                 datetime.now(UTC))


@pytest.fixture
def book(system: System) -> Book:
    return Book(system)


def csv_rows(statement: Statement) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(statement_csv(statement))))


def pdf_text(statement: Statement) -> str:
    reader = pypdf.PdfReader(io.BytesIO(statement_pdf(statement)))
    return "\n".join(page.extract_text() for page in reader.pages)


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class TestMonthlyStatements:
    def test_a_month_holds_exactly_its_own_lines_across_the_boundary(self, book: Book) -> None:
        """The last microsecond of January is January's, midnight is February's; each month
        opens where the one before closed."""
        ada, bob = book.person("Ada Lovelace"), book.person("Bob Builder")
        book.fund(moment("2025-12-15T09:00:00"), ada, 10_000)
        book.transfer(moment("2026-01-31T23:59:59.999999"), ada, bob, 1_500, note="last of january")
        book.transfer(moment("2026-02-01T00:00:00"), bob, ada, 700, note="first of february")
        book.transfer(moment("2026-02-14T12:30:00"), ada, bob, 2_000, note="rent")

        january, february = book.statement(ada, "2026-01"), book.statement(ada, "2026-02")
        assert (january.opening_balance, january.closing_balance) == (10_000, 8_495)
        assert [(line.type, line.direction, line.amount, line.reference)
                for line in january.lines] == [("transfer", "debit", 1_500, "last of january"),
                                               ("fee", "debit", 5, "last of january")]
        assert (february.opening_balance, february.closing_balance) == (8_495, 7_190)
        assert [(line.type, line.direction, line.amount, line.reference)
                for line in february.lines] == [("transfer", "credit", 700, "first of february"),
                                                ("transfer", "debit", 2_000, "rent"),
                                                ("fee", "debit", 5, "rent")]

        rows = csv_rows(february)
        assert [row["type"] for row in rows] == [
            "opening_balance", "transfer", "transfer", "fee", "closing_balance"]
        assert rows[0]["balance"] == "84.95" and rows[-1]["balance"] == "71.90"
        assert [(row["date"], row["money_in"], row["money_out"], row["balance"], row["reference"])
                for row in rows[1:-1]] == [
            ("2026-02-01T00:00:00Z", "7.00", "", "91.95", "first of february"),
            ("2026-02-14T12:30:00Z", "", "20.00", "71.95", "rent"),
            ("2026-02-14T12:30:00Z", "", "0.05", "71.90", "rent")]
        assert (rows[-1]["money_in"], rows[-1]["money_out"]) == ("7.00", "20.05")
        assert rows[-1]["date"] == "2026-03-01T00:00:00Z"

        text = pdf_text(february)
        for expected in ("Ada Lovelace", str(february.wallet_id), "2026-02-01 to 2026-02-28",
                         "Opening balance on 2026-02-01 84.95 USD", "Money in 7.00 USD",
                         "Money out 20.05 USD", "Closing balance 71.90 USD", "first of february",
                         "rent", "+7.00 USD", "-20.00 USD", "-0.05 USD"):
            assert expected in text, expected
        assert "last of january" not in text
        assert "last of january" in pdf_text(january)

    def test_a_month_without_activity_opens_and_closes_at_the_same_balance(self, book: Book) -> None:
        """No lines: the balance carried over, and nothing else; before the first line, zero."""
        ada, bob = book.person("Ada Lovelace"), book.person("Bob Builder")
        book.fund(moment("2026-01-10T08:00:00"), ada, 5_000)
        book.transfer(moment("2026-04-02T10:00:00"), ada, bob, 1_000)
        march = book.statement(ada, "2026-03")
        assert (march.opening_balance, march.lines, march.closing_balance) == (5_000, (), 5_000)
        rows = csv_rows(march)
        assert [(row["type"], row["balance"]) for row in rows] == [
            ("opening_balance", "50.00"), ("closing_balance", "50.00")]
        text = pdf_text(march)
        assert "No transactions in this period." in text
        assert "Opening balance on 2026-03-01 50.00 USD" in text
        assert "Closing balance 50.00 USD" in text
        before = book.statement(ada, "2025-12")
        assert (before.opening_balance, before.lines, before.closing_balance) == (0, (), 0)

    @pytest.mark.parametrize(("currency", "amount", "in_csv", "in_pdf"), [
        ("JPY", 1_234_567, "1234567", "1,234,567 JPY"),
        ("KWD", 1_234_567, "1234.567", "1,234.567 KWD"),
        ("EUR", 1_234_567, "12345.67", "12,345.67 EUR")])
    def test_amounts_have_the_currency_s_minor_digits(self, book: Book, currency: str, amount: int,
                                                      in_csv: str, in_pdf: str) -> None:
        """0, 3 and 2 minor digits, as ISO 4217 gives them for the wallet's currency."""
        ada = book.person("Zoë Дмитриевна Ωμέγα 王", currency=currency)
        book.fund(moment("2026-05-05T05:05:05"), ada, amount, currency)
        may = book.statement(ada, "2026-05")
        assert may.currency == currency
        # Latin, Cyrillic and Greek print as written; a glyph Noto Sans lacks is left blank.
        assert "Zoë Дмитриевна Ωμέγα" in pdf_text(may)
        rows = csv_rows(may)
        assert (rows[1]["money_in"], rows[1]["balance"], rows[1]["currency"]) == (
            in_csv, in_csv, currency)
        assert f"Closing balance {in_pdf}" in pdf_text(may)


class TestSalesAcrossDays:
    def test_each_day_has_its_own_payments_refunds_and_fees(self, system: System,
                                                           book: Book) -> None:
        """A refund counts on the day it is given; fees on payments and refunds are costs of
        sales, and net is what is left."""
        shop = system.commands.run(Register(
            email="till@shop.example", password="x" * 12, kind="company", full_name="Till",
            business_name="Corner Shop", category="merchant")).value
        ada = book.person("Ada Lovelace")
        book.fund(moment("2026-06-01T08:00:00"), ada, 100_000)
        at = book.at

        def pay(when: str, amount: int) -> UUID:
            code = at(moment(when), CreateQrCode(merchant_id=shop.id, amount=amount))
            return at(moment(when), PayQrCode(caller_id=ada.id, payer_wallet_id=ada.wallet_id,
                                              terms=code.terms)).id

        first = pay("2026-06-01T09:00:00", 10_000)
        pay("2026-06-01T23:59:59", 4_000)
        at(moment("2026-06-02T00:00:01"), RefundPayment(
            caller_id=shop.id, merchant_wallet_id=shop.wallet_id, payment_id=first, amount=2_500))
        # Neither is a sale: money sent to the shop, and the shop's own transfer with its fee.
        book.transfer(moment("2026-06-01T12:00:00"), ada, shop, 300)
        book.transfer(moment("2026-06-02T12:00:00"), shop, ada, 1_000)
        system.read_side.catch_up()

        report = sales_report(system.read_side.wallets, shop.wallet_id, date(2026, 5, 31),
                              date(2026, 6, 3), today=date(2026, 6, 3))
        by_day = {day.date.isoformat(): (day.count, day.gross, day.refunds, day.fees, day.net)
                  for day in report.days}
        assert by_day == {
            "2026-05-31": (0, 0, 0, 0, 0),
            "2026-06-01": (2, 14_000, 0, 250 + 100, 14_000 - 350),
            "2026-06-02": (0, 0, 2_500, 10, -2_510),
            "2026-06-03": (0, 0, 0, 0, 0)}
        assert [row.split(",")[:6] for row in sales_csv(report).split("\r\n")[1:-1]] == [
            [day, *map(str, figures)] for day, figures in by_day.items()]
        # The merchant's wallet says the same: what came in less what went out.
        assert book.statement(shop, "2026-06").closing_balance == (
            14_000 - 350 - 2_510 + 300 - 1_000 - 5)
        assert timedelta(days=len(report.days) - 1) == report.last - report.first
