"""A merchant's sales report per UTC day, JSON or CSV: by the merchant, or its server's API key."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from gopay.api.deps import SystemDep
from gopay.api.merchant_auth import MerchantOrKey
from gopay.api.report_schemas import SalesDayPublic, SalesReportPublic
from gopay.api.schemas import IsoDate
from gopay.reports.sales import SalesDay, day_fields, sales_csv, sales_report

router = APIRouter(tags=["merchants"])

# Without `from`, a report covers the 30 days up to `to` (today without it).
DEFAULT_DAYS = 30


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


def _day(day: SalesDay) -> SalesDayPublic:
    return SalesDayPublic.model_validate(day_fields(day))


@router.get("/v1/merchant/reports/sales", response_model=SalesReportPublic, responses={200: {
    "content": {"text/csv": {"schema": {"type": "string"}}}}})
def sales(caller: MerchantOrKey, system: SystemDep,
          from_: Annotated[IsoDate | None, Query(alias="from",
                                                 description="First UTC day, YYYY-MM-DD")] = None,
          to: Annotated[IsoDate | None, Query(description="Last UTC day, included")] = None,
          format: Annotated[ReportFormat, Query()] = ReportFormat.JSON) -> SalesReportPublic | Response:
    """Per UTC day: payments received (count, gross), refunds given that day, GoPay's fees on
    them and net, in minor units of your wallet's currency; at most 366 days."""
    today = system.commands.context.clock().date()
    last = to or today
    first = from_ or last - timedelta(days=DEFAULT_DAYS - 1)
    system.catch_up_reads()
    report = sales_report(system.read_side.wallets, caller.wallet_id, first, last, today)
    if format == ReportFormat.CSV:
        name = f"gopay-sales-{first}-{last}.csv"
        return Response(sales_csv(report), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return SalesReportPublic.model_validate({
        "wallet_id": report.wallet_id, "currency": report.currency, "from": first, "to": last,
        "data": [_day(day) for day in report.days], "totals": _day(report.totals)})
