"""Reconciliation over HTTP: the simulator's own settlement file of real orders, edited to hold
one discrepancy of each kind; suspense; maker-checker adjustments; the reports and the CLI."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pty
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gopay.aggregates.ledger import SystemAccount
from tests.e2e.test_topups_and_payouts import Deployment, eventually, pay_out, top_up
from tests.support import Client, run_gopay, staff

CARD = {"exp_month": 12, "exp_year": 2031, "cvc": "123", "holder_name": "Ada Lovelace"}
HEADER = ["psp_reference", "merchant_reference", "type", "amount", "currency", "fee", "status",
          "settled_at"]


@dataclass
class Books:
    """What the test made: the day's file as the PSP wrote it, edited, and what it expects."""

    deployment: Deployment
    finance: Client
    checker: Client
    payer: Client  # the customer who made the orders
    day: str
    edited: bytes
    edits: dict[tuple[str, str], dict[str, Any]]  # (kind, merchant_reference) -> the line
    matched: int
    payout_id: str


def as_csv(lines: list[dict[str, Any]]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, HEADER, lineterminator="\n")
    writer.writeheader()
    writer.writerows(lines)
    return text.getvalue().encode()


def saved(person: Client, method: dict[str, Any]) -> str:
    response = person.post("/v1/payment-methods", method)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def upload(client: Client, data: bytes, **form: str) -> httpx.Response:
    return client.http.post("/v1/reconciliation/runs", data=form,
                            files={"file": ("settlement.csv", data, "text/csv")})


@pytest.fixture(scope="module")
def books(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Books]:
    """Real orders through GoPay and the simulator: top-ups, a declined one, a chargeback and a
    payout; then the simulator's file of the day with one edit of each kind."""
    gopay = Deployment(postgres_server, tmp_path_factory.mktemp("reconciliation")).start()
    try:
        finance, checker = (staff(gopay.server.url, gopay.server.env, "finance") for _ in range(2))
        person, card = gopay.customer()
        declined, disputed, account = (saved(person, method) for method in (
            {"type": "card", "card": {**CARD, "number": "4000000000000002"}},
            {"type": "card", "card": {**CARD, "number": "4000000000000259"}},
            {"type": "bank_account", "bank_account": {"iban": "DE89370400440532013000",
                                                      "holder_name": "Ada Lovelace"}}))
        topups = [top_up(person, card, 1_000 + n).json()["id"] for n in range(6)]
        assert top_up(person, declined, 700).json()["status"] == "failed"
        charged_back = top_up(person, disputed, 2_500).json()
        assert charged_back["status"] == "succeeded", charged_back
        paid = pay_out(person, account, 1_200).json()
        assert paid["status"] == "succeeded", paid
        assert eventually(lambda: any(  # GoPay has taken the disputed top-up back
            line["type"] == "topup" and line["direction"] == "debit"
            for line in person.history()), timeout=30)

        day = datetime.now(UTC).date().isoformat()
        lines = gopay.settlement()
        by_order = {line["merchant_reference"]: line for line in lines if line["type"] == "charge"}
        short, costly, unsettled, missing, doubled = (by_order[order] for order in topups[:5])
        stranger = {"psp_reference": "ch_stranger", "merchant_reference": str(uuid.uuid4()),
                    "type": "charge", "amount": 4_000, "currency": "USD", "fee": 146,
                    "status": "settled", "settled_at": f"{day}T00:00:01.000000Z"}
        edited = [line for line in lines if line is not missing]
        for line, change in ((short, {"amount": int(short["amount"]) + 10}),
                             (costly, {"fee": int(costly["fee"]) + 1}),
                             (unsettled, {"status": "failed"})):
            edited[edited.index(line)] = {**line, **change}
        edited += [stranger, doubled]
        yield Books(
            deployment=gopay, finance=finance, checker=checker, payer=person,
            day=day, edited=as_csv(edited), matched=len(lines) - 4, payout_id=paid["id"],
            edits={("amount_mismatch", short["merchant_reference"]): short,
                   ("fee_mismatch", costly["merchant_reference"]): costly,
                   ("status_mismatch", unsettled["merchant_reference"]): unsettled,
                   ("missing_in_psp", missing["merchant_reference"]): missing,
                   ("duplicates", doubled["merchant_reference"]): doubled,
                   ("missing_in_ledger", stranger["merchant_reference"]): stranger})
    finally:
        gopay.stop()


@pytest.fixture(scope="module")
def run(books: Books) -> dict[str, Any]:
    response = upload(books.finance, books.edited)
    assert response.status_code == 201, response.text
    return response.json()


class TestAFileWithEachKindOfDiscrepancy:
    def test_exactly_the_edited_lines_are_flagged(self, books: Books, run: dict[str, Any]) -> None:
        """The summary counts one of each kind; every other line of the PSP's file matched."""
        assert run["summary"] == {"matched": books.matched, "missing_in_ledger": 1,
                                  "missing_in_psp": 1, "amount_mismatch": 1, "status_mismatch": 1,
                                  "fee_mismatch": 1, "duplicates": 1}
        assert re.fullmatch(r"[0-9a-f]{64}", run["file_sha256"])
        page = books.finance.get(run["items_url"], params={"limit": 200}).json()
        assert page["next_cursor"] is None
        assert {(item["kind"], item["merchant_reference"]) for item in page["data"]} == set(books.edits)

    def test_each_item_says_what_the_ledger_and_the_file_say(self, books: Books,
                                                            run: dict[str, Any]) -> None:
        items = {item["kind"]: item for item in books.finance.get(run["items_url"]).json()["data"]}
        short = books.edits["amount_mismatch", items["amount_mismatch"]["merchant_reference"]]
        assert (items["amount_mismatch"]["expected"], items["amount_mismatch"]["actual"]) == (
            {"amount": int(short["amount"]), "currency": "USD"},
            {"amount": int(short["amount"]) + 10, "currency": "USD"})
        assert items["amount_mismatch"]["order_ids"] == [short["merchant_reference"]]
        assert (items["status_mismatch"]["expected"], items["status_mismatch"]["actual"]) == (
            {"status": "succeeded"}, {"status": "failed"})
        missing = items["missing_in_psp"]
        assert (missing["actual"], missing["expected"]["status"], missing["psp_reference"]) == (
            None, "succeeded",
            books.edits["missing_in_psp", missing["merchant_reference"]]["psp_reference"])
        assert items["missing_in_ledger"]["expected"] is None
        assert items["missing_in_ledger"]["actual"]["amount"] == 4_000
        assert all(item["cause"] for item in items.values())
        only_fees = books.finance.get(run["items_url"], params={"kind": "fee_mismatch"}).json()
        assert [item["kind"] for item in only_fees["data"]] == ["fee_mismatch"]

    def test_the_same_file_again_is_the_same_run(self, books: Books, run: dict[str, Any]) -> None:
        again = upload(books.finance, books.edited)
        assert again.status_code == 201, again.text
        assert again.json() == run
        runs = books.finance.get("/v1/reconciliation/runs").json()["data"]
        assert [r["id"] for r in runs] == [run["id"]]
        assert books.finance.get(f"/v1/reconciliation/runs/{run['id']}").json() == run

    def test_the_cli_prints_the_same_run(self, books: Books, run: dict[str, Any],
                                         tmp_path: Path) -> None:
        """`gopay reconcile FILE` in a script: no progress bar, the summary as JSON, exit 0."""
        path = tmp_path / "settlement.csv"
        path.write_bytes(books.edited)
        done = run_gopay("reconcile", str(path), env=books.deployment.server.env)
        printed = json.loads(done.stdout)
        assert (printed["id"], printed["summary"], printed["repeated"]) == (
            run["id"], run["summary"], True)
        assert done.stderr == ""

    def test_the_cli_shows_a_progress_bar_on_a_terminal(self, books: Books, run: dict[str, Any],
                                                        tmp_path: Path) -> None:
        """With stderr on a terminal the bar is drawn there; stdout still holds the JSON alone."""
        path = tmp_path / "settlement.csv"
        path.write_bytes(books.edited)
        terminal, attached = pty.openpty()
        process = subprocess.Popen([sys.executable, "-m", "gopay", "reconcile", str(path)],
                                   env={**books.deployment.server.env, "TERM": "xterm"},
                                   stdout=subprocess.PIPE, stderr=attached)
        os.close(attached)
        drawn = b""
        while True:  # until the process closes the terminal (EIO) or the reading ends
            try:
                chunk = os.read(terminal, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
        os.close(terminal)
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0, drawn.decode(errors="replace")
        assert json.loads(out)["id"] == run["id"]
        assert b"reading" in drawn and b"matching" in drawn, drawn
        assert f"{len(books.edited) / 1000:.1f}".encode() in drawn  # the file's size in kB

    def test_a_file_that_is_no_settlement_file_is_a_422(self, books: Books) -> None:
        broken = books.edited + b"ch_x,y,charge,ten,USD,0,settled,now\n"
        refused = upload(books.finance, broken)
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "validation_error"
        assert refused.json()["line"] == books.edited.count(b"\n") + 1
        again = upload(books.finance, broken)  # the same bytes: the same refusal, read from the run
        assert (again.status_code, again.json()["detail"]) == (422, refused.json()["detail"])
        abandoned = [r for r in books.finance.get("/v1/reconciliation/runs").json()["data"]
                     if r["file_sha256"] == hashlib.sha256(broken).hexdigest()]
        assert [(r["status"], r["abandoned_because"]) for r in abandoned] == [
            ("abandoned", refused.json()["detail"])]
        findings = books.finance.get(abandoned[0]["items_url"]).json()["data"]
        assert findings == []  # an abandoned run lists no findings
        assert upload(books.finance, b"").status_code == 422
        missing_file = books.finance.http.post("/v1/reconciliation/runs", data={"x": "1"})
        assert missing_file.status_code == 422


class TestReports:
    def test_the_csv_report_lists_every_discrepancy(self, books: Books, run: dict[str, Any]) -> None:
        response = books.finance.get(f"/v1/reconciliation/runs/{run['id']}/report",
                                     params={"format": "csv"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert {(row["kind"], row["merchant_reference"]) for row in rows} == set(books.edits)

    def test_the_html_report_has_totals_and_a_chart_and_fetches_nothing(
            self, books: Books, run: dict[str, Any]) -> None:
        response = books.finance.get(f"/v1/reconciliation/runs/{run['id']}/report",
                                     params={"format": "html"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "style-src 'sha256-" in policy
        page = response.text
        assert "<svg" in page and "Totals" in page and books.day in page
        assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)

    def test_the_payout_report_lists_the_day_s_payouts_with_the_psp_s_references(
            self, books: Books) -> None:
        report = books.finance.get("/v1/reconciliation/payouts", params={"date": books.day}).json()
        [payout] = [line for line in report["data"] if line["id"] == books.payout_id]
        assert (payout["status"], payout["amount"], payout["fee"]) == ("succeeded", 1_200, 25)
        assert payout["psp_reference"].startswith("po_")
        as_csv = books.finance.get("/v1/reconciliation/payouts",
                                   params={"date": books.day, "format": "csv"})
        assert books.payout_id in as_csv.text and payout["psp_reference"] in as_csv.text


class TestSuspenseAndMakerChecker:
    def test_an_unexplained_charge_goes_to_suspense_and_out_of_it_once(
            self, books: Books, run: dict[str, Any]) -> None:
        """Finance books the PSP's unknown charge to suspense; the maker cannot approve the
        entry that gives it to its owner; two checkers at once apply it once."""
        [stranger] = books.finance.get(run["items_url"],
                                       params={"kind": "missing_in_ledger"}).json()["data"]
        posted = books.finance.post(f"/v1/reconciliation/items/{stranger['id']}/suspense")
        assert posted.status_code == 201, posted.text
        assert posted.json()["amount"] == 4_000 - 146
        again = books.finance.post(f"/v1/reconciliation/items/{stranger['id']}/suspense")
        assert (again.status_code, again.json()["code"]) == (409, "invalid_state")
        assert eventually(lambda: self.suspense(books) == 3_854, timeout=10)

        balance = books.payer.balance()
        proposal = books.finance.post("/v1/admin/adjustment-proposals", {
            "account": books.payer.user["wallet_id"], "direction": "credit", "amount": 3_854,
            "currency": "USD", "reason": "the PSP's charge ch_stranger was hers",
            "counter_account": "suspense"})
        assert proposal.status_code == 201, proposal.text
        body = proposal.json()
        assert (body["status"], body["proposed_by"]) == (
            "proposed", books.finance.get("/v1/me").json()["id"])
        own = books.finance.post(f"/v1/admin/adjustment-proposals/{body['id']}/approve")
        assert (own.status_code, own.json()["code"]) == (403, "forbidden")

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(
                lambda checker: checker.post(f"/v1/admin/adjustment-proposals/{body['id']}/approve"),
                [books.checker, books.deployment.admin]))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200, 409], [answer.text for answer in answers]
        winner, applied = next((checker, answer.json()) for checker, answer
                               in zip([books.checker, books.deployment.admin], answers, strict=True)
                               if answer.status_code == 200)
        assert applied["status"] == "applied" and applied["order_id"]
        clicked_again = winner.post(f"/v1/admin/adjustment-proposals/{body['id']}/approve")
        assert (clicked_again.status_code, clicked_again.json()) == (200, applied)
        assert books.payer.balance() == balance + 3_854
        assert eventually(lambda: self.suspense(books) == 0, timeout=10)
        listed = books.checker.get("/v1/admin/adjustment-proposals",
                                   params={"status": "applied"}).json()["data"]
        assert [p["id"] for p in listed] == [body["id"]]

    def test_a_finding_still_settling_or_a_repeated_line_cannot_go_to_suspense(
            self, books: Books, run: dict[str, Any]) -> None:
        [doubled] = books.finance.get(run["items_url"], params={"kind": "duplicates"}).json()["data"]
        refused = books.finance.post(f"/v1/reconciliation/items/{doubled['id']}/suspense")
        assert (refused.status_code, refused.json()["code"]) == (409, "invalid_state")

    @staticmethod
    def suspense(books: Books) -> int:
        return books.deployment.ledger(SystemAccount.SUSPENSE)
