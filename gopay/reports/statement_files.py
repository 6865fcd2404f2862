"""Statements as files: CSV for spreadsheets, PDF (from an HTML template) for a bank or a landlord.

The PDF is drawn by fpdf2 from `templates/statement.html` with Noto Sans embedded (Latin, Greek
and Cyrillic names print as written), so it needs nothing from the operating system.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib.resources import files

from fpdf import FPDF
from jinja2 import Environment, PackageLoader, Template, select_autoescape

from gopay.aggregates.errors import ValidationFailed
from gopay.aggregates.money import Money
from gopay.reports.statements import Statement

CSV_HEADER = ("date", "type", "direction", "counterparty", "reference", "money_in", "money_out",
              "balance", "currency", "transaction_id")
# The transactions table: a header, its width in mm (of A4's 190 between margins), alignment.
# Each line is a row of plain cells: fpdf2 lays out an HTML table cell by cell with line
# breaking, about five times slower, and a merchant's month may hold thousands of lines.
LAYOUT = (("Date (UTC)", 22, "L"), ("Type", 18, "L"), ("Counterparty", 50, "L"),
          ("Reference", 40, "L"), ("Amount", 30, "R"), ("Balance", 30, "R"))
TABLE_FONT_SIZE = 7  # a wallet id (the counterparty of a payment) fits its column whole
COLUMNS = tuple(header for header, _, _ in LAYOUT)
ROW_HEIGHT = 5
# About 5 s of one core at most (a thousand lines take about 1 s here); more is a CSV's job.
MOST_PDF_LINES = 5_000
# The variable Noto Sans at its default instance (regular, normal width). An instance of
# another weight takes fontTools seconds to cut, so bold text is set in the same face and
# headings stand out by size instead.
NOTO_SANS = files("fontpkg_noto_sans") / "files" / "NotoSans[wdth,wght].ttf"


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def spreadsheet_safe(text: str) -> str:
    """A cell a spreadsheet shows as text and never runs as a formula (references are typed
    by customers)."""
    return "'" + text if text and text[0] in "=+-@\t\r" else text


def statement_csv(statement: Statement) -> str:
    """One table: the opening balance, each line with the balance it left, then the closing
    balance with the month's totals in and out; amounts in major units of the currency."""
    def amount(value: int) -> str:
        return Money(value, statement.currency).in_major_units()

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    start = datetime.combine(statement.month, datetime.min.time(), UTC)
    writer.writerow((rfc3339(start), "opening_balance", "", "", "", "", "",
                     amount(statement.opening_balance), statement.currency, ""))
    for line in statement.lines:
        writer.writerow((
            rfc3339(line.at), line.type, line.direction, spreadsheet_safe(line.counterparty),
            spreadsheet_safe(line.reference),
            amount(line.amount) if line.direction == "credit" else "",
            amount(line.amount) if line.direction == "debit" else "",
            amount(line.balance_after), statement.currency, str(line.id)))
    end = (datetime.combine(statement.period_end, datetime.min.time(), UTC)
           if statement.complete else statement.issued_at)
    writer.writerow((rfc3339(end), "closing_balance", "", "", "", amount(statement.money_in),
                     amount(statement.money_out), amount(statement.closing_balance),
                     statement.currency, ""))
    return buffer.getvalue()


class StatementPdf(FPDF):
    """An A4 document whose every page names the statement and its page number."""

    def __init__(self, title: str) -> None:
        super().__init__(format="A4")
        self.title = title
        for style in ("", "B"):
            self.add_font("NotoSans", style=style, fname=str(NOTO_SANS))
        self.set_title(title)
        self.set_author("GoPay")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("NotoSans", size=8)
        self.cell(0, 8, f"{self.title} - page {self.page_no()} of {{nb}}", align="C")

    def table_row(self, cells: Sequence[str], *, border: str = "B") -> None:
        """One line of the transactions table: text cut to its column, amounts set smaller."""
        if self.will_page_break(ROW_HEIGHT):
            self.add_page()
            self.table_row(COLUMNS, border="TB")  # the header again on every page
        for (_, width, align), text in zip(LAYOUT, cells, strict=True):
            if align == "R":  # an amount is never cut: a huge one is set smaller
                size: float = TABLE_FONT_SIZE
                while self.get_string_width(text) > width - 1 and size > 4:
                    size -= 0.5
                    self.set_font_size(size)
                self.cell(width, ROW_HEIGHT, text, border=border, align=align)
                self.set_font_size(TABLE_FONT_SIZE)
            else:
                self.cell(width, ROW_HEIGHT, self._cut(text, width - 1), border=border,
                          align=align)
        self.ln(ROW_HEIGHT)

    def _cut(self, text: str, width: float) -> str:
        """`text`, or as much of it as fits `width` followed by an ellipsis."""
        full = self.get_string_width(text)
        if full <= width:
            return text
        # Start from the share of the text that fits, then take off what still overflows.
        text = text[:int(len(text) * width / full)]
        while text and self.get_string_width(text + "…") > width:
            text = text[:-1]
        return text + "…"


@cache
def _template() -> Template:
    environment = Environment(loader=PackageLoader("gopay.reports", "templates"),
                              autoescape=select_autoescape(["html"]))
    return environment.get_template("statement.html")


def statement_pdf(statement: Statement) -> bytes:
    """The statement as a PDF document, A4, every page numbered."""
    if len(statement.lines) > MOST_PDF_LINES:
        raise ValidationFailed(f"this month has {len(statement.lines)} lines, more than a PDF "
                               f"statement holds ({MOST_PDF_LINES}): ask for format=csv")
    def money(value: int) -> str:
        return f"{Money(value, statement.currency).in_major_units(grouped=True)} {statement.currency}"

    html = _template().render(
        statement=statement, money=money, last_day=statement.period_end - timedelta(days=1),
        issued_at=statement.issued_at.strftime("%Y-%m-%d %H:%M UTC"))
    pdf = StatementPdf(f"GoPay statement {statement.month:%Y-%m}, wallet {statement.wallet_id}")
    pdf.set_creation_date(statement.issued_at)
    pdf.set_font("NotoSans", size=9)
    pdf.add_page()
    pdf.write_html(html, font_family="NotoSans", table_line_separators=True)
    if statement.lines:
        pdf.set_font("NotoSans", size=TABLE_FONT_SIZE)
        pdf.table_row(COLUMNS, border="TB")
        for line in statement.lines:
            sign = "+" if line.direction == "credit" else "-"
            pdf.table_row((line.at.strftime("%Y-%m-%d %H:%M"), line.type, line.counterparty,
                           line.reference, sign + money(line.amount), money(line.balance_after)))
    return bytes(pdf.output())
