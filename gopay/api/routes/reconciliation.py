"""For finance: settlement files reconciled against the ledger, their findings and reports,
findings moved to suspense, and the payout report."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from gopay.api.deps import IdCursor, IdempotencyKey, SystemDep, id_cursor, staff_with
from gopay.api.pagination import page_of
from gopay.api.problems import Problem
from gopay.api.reconciliation_schemas import (
    FindingKind,
    PayoutReportLine,
    PayoutReportPage,
    ReconciliationItemPublic,
    ReconciliationRunPublic,
    SuspensePostingPublic,
)
from gopay.api.schemas import IsoDate, Page
from gopay.commands.reconciliation import PostFindingToSuspense
from gopay.reconcile import report
from gopay.reconcile.runs import reconcile
from gopay.security.tokens import AccessClaims
from gopay.system import System

router = APIRouter(prefix="/v1/reconciliation", tags=["reconciliation"])

Finance = Annotated[AccessClaims, Depends(staff_with("finance"))]
REPORT_PAGE = 5000
REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {200: {
    "description": "The findings as CSV, or the run's page with totals and a chart of the day",
    "content": {"text/csv": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}}}}}


def run_public(row: dict[str, Any]) -> ReconciliationRunPublic:
    return ReconciliationRunPublic(
        id=row["id"], file_sha256=row["file_sha256"], file_name=row["file_name"],
        status=row["status"], source=row["source"], period=row["period"], lines=row["lines"],
        summary=row["summary"], items_url=f"/v1/reconciliation/runs/{row['id']}/items",
        report_url=f"/v1/reconciliation/runs/{row['id']}/report",
        started_by=row["started_by"], started_at=row["started_at"],
        finished_at=row["finished_at"], abandoned_because=row["abandoned_because"] or None)


def item_public(row: dict[str, Any]) -> ReconciliationItemPublic:
    return ReconciliationItemPublic(
        id=row["item_id"], kind=row["kind"], psp_reference=row["psp_reference"],
        merchant_reference=row["merchant_reference"], expected=row["expected"],
        actual=row["actual"], cause=row["cause"], order_ids=row["order_ids"], line=row["line"],
        difference=row["difference"], suspense_order_id=row["suspense_order_id"])


@router.post("/runs", status_code=201, response_model=ReconciliationRunPublic)
def create_run(staff: Finance, system: SystemDep,
               file: Annotated[UploadFile, File(description="The PSP's settlement file (CSV)")],
               day: Annotated[IsoDate | None, Form(
                   alias="date", description="A UTC day the file is for, beyond those its lines "
                                             "fall on (for a day with no operations)")] = None,
               ) -> ReconciliationRunPublic:
    """Reconcile a settlement file against the ledger; the same file again is the same run."""
    outcome = reconcile(system, file.file, file_name=file.filename or "settlement.csv",
                        origin="upload", started_by=staff.user_id, days=[day] if day else [])
    return run_public(_run(system, outcome.run_id))


@router.get("/runs", response_model=Page[ReconciliationRunPublic])
def runs(staff: Finance, system: SystemDep, limit: Annotated[int, Query(ge=1, le=200)] = 50,
         cursor: IdCursor = None) -> Page[ReconciliationRunPublic]:
    """Reconciliation runs, newest first."""
    system.catch_up_reads()
    after = id_cursor(cursor)
    rows = system.read_side.reconciliation.runs(limit=limit + 1,
                                                after=UUID(after) if after else None)
    return page_of(Page[ReconciliationRunPublic], rows, limit, run_public, lambda row: row["id"])


@router.get("/runs/{run_id}", response_model=ReconciliationRunPublic)
def get_run(run_id: str, staff: Finance, system: SystemDep) -> ReconciliationRunPublic:
    system.catch_up_reads()
    return run_public(_run(system, _id(run_id, "run")))


@router.get("/runs/{run_id}/items", response_model=Page[ReconciliationItemPublic])
def items(run_id: str, staff: Finance, system: SystemDep,
          kind: FindingKind | None = None,
          limit: Annotated[int, Query(ge=1, le=200)] = 50,
          cursor: IdCursor = None) -> Page[ReconciliationItemPublic]:
    """The run's discrepancies, in the file's order (those missing at the PSP last)."""
    system.catch_up_reads()
    run = _run(system, _id(run_id, "run"))
    after = id_cursor(cursor)
    rows = system.read_side.reconciliation.items(run["id"], limit=limit + 1, kind=kind,
                                                 after=UUID(after) if after else None)
    return page_of(Page[ReconciliationItemPublic], rows, limit, item_public, lambda row: row["item_id"])


@router.get("/runs/{run_id}/report", response_class=Response, responses=REPORT_RESPONSES)
def run_report(run_id: str, staff: Finance, system: SystemDep,
               format: Literal["csv", "html"] = "csv") -> Response:
    """The run for finance: every finding as CSV, or a page with the totals of both sides, a
    chart of the day and the findings (`format=html`), served with everything it needs."""
    system.catch_up_reads()
    run = _run(system, _id(run_id, "run"))
    view = system.read_side.reconciliation
    if format == "html":
        findings = view.items(run["id"], limit=report.HTML_FINDINGS)
        return HTMLResponse(report.html_page(run, findings),
                            headers={"Content-Security-Policy": report.HTML_CSP})

    def every_finding() -> Iterator[dict[str, Any]]:
        after = None
        while page := view.items(run["id"], limit=REPORT_PAGE, after=after):
            yield from page
            after = page[-1]["item_id"]

    return StreamingResponse(
        report.csv_lines(every_finding()), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="reconciliation-{run["id"]}.csv"'})


@router.post("/items/{item_id}/suspense", status_code=201, response_model=SuspensePostingPublic)
def post_to_suspense(item_id: str, staff: Finance, system: SystemDep,
                     idempotency_key: IdempotencyKey = None) -> SuspensePostingPublic:
    """Book a finding's difference, which finance cannot explain, to `suspense` (once).

    The clearing account the PSP's money passes through is corrected by the difference the
    run worked out, and suspense holds it until an approved adjustment moves it on.
    """
    system.catch_up_reads()
    item = system.read_side.reconciliation.item(_id(item_id, "finding"))
    if item is None:
        raise Problem(404, "finding not found")
    difference = item["difference"]
    if difference is None:
        raise Problem(409, "this finding is no difference of money to settle: the order is "
                           "still settling with the PSP, or the file repeats a line",
                      "invalid_state")
    order = system.commands.run(PostFindingToSuspense(
        caller_id=staff.user_id, run_id=item["run_id"], seq=item["seq"],
        account=difference["account"], amount=difference["amount"],
        currency=difference["currency"], idempotency_key=idempotency_key,
        fingerprint=str(item["item_id"]))).value
    return SuspensePostingPublic(item_id=item["item_id"], order_id=order.id,
                                 account=difference["account"], amount=difference["amount"],
                                 currency=difference["currency"])


@router.get("/payouts", response_model=PayoutReportPage,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
def payout_report(staff: Finance, system: SystemDep, day: Annotated[IsoDate, Query(alias="date")],
                  format: Literal["json", "csv"] = "json",
                  limit: Annotated[int, Query(ge=1, le=200)] = 50,
                  cursor: IdCursor = None) -> Any:
    """The day's payouts (UTC) with the PSP's references, newest first, to reconcile with
    the PSP's payouts; `format=csv` gives the whole day at once."""
    system.catch_up_reads()
    view = system.read_side.psp_orders
    if format == "csv":
        return Response(_payouts_csv(system, day), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition":
                                 f'attachment; filename="payouts-{day.isoformat()}.csv"'})
    after = id_cursor(cursor)
    rows = view.payouts(day, limit=limit + 1, after=UUID(after) if after else None)
    return PayoutReportPage(date=day.isoformat(), data=[_payout(row) for row in rows[:limit]],
                            next_cursor=str(rows[limit - 1]["order_id"]) if len(rows) > limit
                            else None)


def _payout(row: dict[str, Any]) -> PayoutReportLine:
    return PayoutReportLine(id=row["order_id"], wallet_id=row["wallet_id"], amount=row["amount"],
                            currency=row["currency"], fee=row["psp_fee"], status=row["status"],
                            psp_reference=row["psp_reference"], created_at=row["created_at"],
                            settled_at=row["settled_at"], merchant_id=row["merchant_id"],
                            schedule_period=row["schedule_period"])


def _payouts_csv(system: System, day: date) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(PayoutReportLine.model_fields)
    after = None
    while rows := system.read_side.psp_orders.payouts(day, limit=REPORT_PAGE, after=after):
        for row in rows:
            writer.writerow("" if value is None else value
                            for value in _payout(row).model_dump(mode="json").values())
        after = rows[-1]["order_id"]
    return text.getvalue()


def _run(system: System, run_id: UUID) -> dict[str, Any]:
    row = system.read_side.reconciliation.run(run_id)
    if row is None:
        raise Problem(404, "reconciliation run not found")
    return row


def _id(text: str, noun: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise Problem(404, f"{noun} not found") from None
