"""A statement's CSV and PDF: every line in full in the CSV, safe in a spreadsheet; the PDF bounded."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from uuid import uuid4

import pypdf
import pytest

from gopay.aggregates.errors import ValidationFailed
from gopay.aggregates.money import MAX_AMOUNT
from gopay.reports.statement_files import MOST_PDF_LINES, statement_csv, statement_pdf
from gopay.reports.statements import Statement, StatementLine

LONG_REFERENCE = "invoice 2026-0042 for the catering of the annual general meeting, room B"


def statement_with(*references: str, count: int = 0) -> Statement:
    lines = [StatementLine(uuid4(), datetime(2026, 2, 3, 10, tzinfo=UTC), "transfer", "credit",
                           100, "bob@example.com", reference, 100 * (n + 1))
             for n, reference in enumerate(references or ("",) * count)]
    return Statement("Ada Lovelace", uuid4(), "USD", date(2026, 2, 1),
                     datetime(2026, 3, 1, 8, tzinfo=UTC), 0, tuple(lines))


def test_the_csv_keeps_long_references_whole_and_formulas_inert() -> None:
    """A reference typed by a customer never runs in a spreadsheet, and is never cut."""
    rows = list(csv.DictReader(io.StringIO(statement_csv(statement_with(
        LONG_REFERENCE, '=HYPERLINK("http://x")', "+1", "-1", "@sum")))))
    assert [row["reference"] for row in rows[1:-1]] == [
        LONG_REFERENCE, "'=HYPERLINK(\"http://x\")", "'+1", "'-1", "'@sum"]


def test_the_pdf_shortens_what_does_not_fit_its_column() -> None:
    text = pypdf.PdfReader(io.BytesIO(statement_pdf(statement_with(LONG_REFERENCE)))).pages[0]
    extracted = text.extract_text()
    assert LONG_REFERENCE not in extracted
    assert "invoice 2026-0042" in extracted and "…" in extracted


def test_wallet_ids_and_amounts_are_never_cut() -> None:
    """The counterparty of a payment is a wallet id; the largest amount GoPay holds fits too."""
    wallet = str(uuid4())
    line = StatementLine(uuid4(), datetime(2026, 2, 3, 10, tzinfo=UTC), "transfer", "credit",
                         MAX_AMOUNT, wallet, "", MAX_AMOUNT)
    statement = Statement("Ada", uuid4(), "KWD", date(2026, 2, 1),
                          datetime(2026, 3, 1, tzinfo=UTC), 0, (line,))
    text = pypdf.PdfReader(io.BytesIO(statement_pdf(statement))).pages[0].extract_text()
    assert wallet in text and "+1,000,000,000,000.000 KWD" in text and "…" not in text


def test_a_month_too_long_for_a_pdf_is_sent_to_the_csv() -> None:
    """Refused before any drawing: 422, not minutes of one core."""
    with pytest.raises(ValidationFailed, match="format=csv"):
        statement_pdf(statement_with(count=MOST_PDF_LINES + 1))
