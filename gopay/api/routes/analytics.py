"""Business analytics for staff: per UTC day, volumes by type, fees, users and failures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from gopay.api.analytics_schemas import AnalyticsReport
from gopay.api.deps import SystemDep, staff_with
from gopay.api.problems import Problem
from gopay.api.schemas import IsoDate
from gopay.projections.analytics import report
from gopay.security.tokens import AccessClaims

router = APIRouter(prefix="/v1/admin", tags=["admin"])

# Auditors see everything (the dashboard shows them these figures too) and change nothing.
ANALYTICS_READERS = ("admin", "sub_admin", "finance", "auditor")
AnalyticsReader = Annotated[AccessClaims, Depends(staff_with(*ANALYTICS_READERS))]
FirstDay = Annotated[IsoDate | None, Query(alias="from", description="First UTC day (YYYY-MM-DD)")]
LastDay = Annotated[IsoDate | None, Query(alias="to", description="Last UTC day, included")]
DEFAULT_DAYS = 30
MAX_DAYS = 366


def period(since: date | None, until: date | None) -> tuple[date, date]:
    """The days asked for: by default the last 30 up to today (UTC); at most a year."""
    try:
        until = until or (since + timedelta(days=DEFAULT_DAYS - 1) if since
                          else datetime.now(UTC).date())
        since = since or until - timedelta(days=DEFAULT_DAYS - 1)
    except OverflowError:  # 30 days from 9999-12-31, or before 0001-01-01
        raise Problem(422, "the period runs past the calendar's ends", "validation_error") from None
    if since > until:
        raise Problem(422, "`from` is after `to`", "validation_error")
    if (until - since).days >= MAX_DAYS:
        raise Problem(422, f"ask for at most {MAX_DAYS} days at a time", "validation_error")
    return since, until


@router.get("/analytics", response_model=AnalyticsReport)
def analytics(staff: AnalyticsReader, system: SystemDep, since: FirstDay = None,
              until: LastDay = None) -> AnalyticsReport:
    """Per UTC day: succeeded payments by type (count and volume per currency), fees, new and
    active customers, failed payments; and the totals of the period (by default the last 30
    days). Kept by a projection, never counted over the event log."""
    since, until = period(since, until)
    system.catch_up_reads()
    return AnalyticsReport.model_validate(report(system.read_side.analytics, since, until))
