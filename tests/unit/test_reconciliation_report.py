"""Reconciliation reports: CSV a spreadsheet cannot be tricked by, and an HTML page that fetches nothing."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from gopay.reconcile import report


def finding(**fields: Any) -> dict[str, Any]:
    return {"kind": "missing_in_ledger", "line": 7, "psp_reference": "ch_1",
            "merchant_reference": '=HYPERLINK("http://evil")', "expected": None,
            "actual": {"amount": 1_050, "currency": "USD"}, "cause": "<script>alert(1)</script>",
            "order_ids": [], "difference": {"account": "psp_clearing", "amount": -1_050,
                                            "currency": "USD"},
            "suspense_order_id": None, **fields}


def run(**fields: Any) -> dict[str, Any]:
    return {"id": uuid4(), "file_name": "<b>2026-03-12</b>.csv", "file_sha256": "ab" * 32,
            "period": ["2026-03-12"], "lines": 1_234, "status": "completed",
            "started_at": datetime(2026, 3, 13, 2, tzinfo=UTC),
            "finished_at": datetime(2026, 3, 13, 2, 1, tzinfo=UTC),
            "summary": {"matched": 1_233, "missing_in_ledger": 1, "missing_in_psp": 0,
                        "amount_mismatch": 0, "status_mismatch": 0, "fee_mismatch": 0,
                        "duplicates": 0},
            "report": {"hours": {"2026-03-12": [[50, 0]] * 23 + [[3, 1]]},
                       "file_totals": [{"type": "charge", "status": "settled", "currency": "USD",
                                        "count": 1_234, "amount": 123_456, "fee": 3_580}],
                       "ledger_totals": []}, **fields}


class TestCsv:
    def test_a_cell_from_the_file_is_never_a_formula(self) -> None:
        rows = list(csv.DictReader(io.StringIO("".join(report.csv_lines([finding()])))))
        assert rows[0]["merchant_reference"] == "'=HYPERLINK(\"http://evil\")"
        assert (rows[0]["actual"], rows[0]["difference_amount"]) == ("amount=1050; currency=USD", "-1050")

    def test_many_findings_stream_in_pieces(self) -> None:
        pieces = list(report.csv_lines(finding() for _ in range(2_500)))
        assert len(pieces) == 3
        assert "".join(pieces).count("\n") == 2_501


class TestHtml:
    def test_the_page_escapes_what_came_from_outside_and_loads_nothing(self) -> None:
        page = report.html_page(run(), [finding()])
        assert "<script>" not in page and "&lt;script&gt;" in page
        assert "<b>2026-03-12</b>" not in page
        assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)
        assert page.count("<svg") == 1 and page.count("<rect") == 48

    def test_the_policy_allows_exactly_the_page_s_own_style(self) -> None:
        page = report.html_page(run(), [])
        [style] = re.findall(r"<style>(.*?)</style>", page, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
        assert f"style-src 'sha256-{digest}'" in report.HTML_CSP
        assert report.HTML_CSP.startswith("default-src 'none'")

    def test_totals_are_shown_as_people_read_money(self) -> None:
        page = report.html_page(run(), [])
        assert "1,234.56 USD" in page and "35.80 USD" in page
        assert report.money(-1_050, "USD") == "-10.50 USD" and report.money(500, "JPY") == "500 JPY"
