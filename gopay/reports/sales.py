"""A merchant's sales per UTC day: payments received, refunds given, GoPay's fees on them, and net.

From the merchant wallet's history in the read side: a QR payment is a `qr_payment` credit, a
refund a `refund` debit (counted on the day it was given, not the day of the payment), and a
fee a `fee` debit taken on one of those; net is gross less refunds and fees.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

from gopay.aggregates.errors import NotFound, ValidationFailed
from gopay.projections.wallets import WalletView

# Days one report may cover: a year and a day, so any calendar year fits.
LONGEST_RANGE_DAYS = 366
# GoPay has no sales before this day, nor any a year after today.
EARLIEST_DAY = date(2000, 1, 1)
CSV_HEADER = ("date", "count", "gross", "refunds", "fees", "net", "currency")


@dataclass(frozen=True)
class SalesDay:
    """One UTC day of a merchant's sales, amounts in minor units."""

    date: date
    count: int
    gross: int
    refunds: int
    fees: int

    @property
    def net(self) -> int:
        return self.gross - self.refunds - self.fees


@dataclass(frozen=True)
class SalesReport:
    """Every day from `first` to `last` (both included), days without sales as zeros."""

    wallet_id: UUID
    currency: str
    first: date
    last: date
    days: tuple[SalesDay, ...]

    @property
    def totals(self) -> SalesDay:
        """The whole range as one row (its `date` is the first day)."""
        return SalesDay(self.first, *(sum(getattr(day, name) for day in self.days)
                                      for name in ("count", "gross", "refunds", "fees")))


def checked_range(first: date, last: date, today: date) -> None:
    """ValidationFailed unless `first` ≤ `last`, both from 2000 to a year ahead of `today`,
    and the range is short enough to report on."""
    for day in (first, last):
        if not EARLIEST_DAY <= day <= today + timedelta(days=LONGEST_RANGE_DAYS):
            raise ValidationFailed(f"{day} is outside the days GoPay reports on (from "
                                   f"{EARLIEST_DAY} to a year from today)")
    if first > last:
        raise ValidationFailed(f"from ({first}) is after to ({last})")
    if (last - first).days + 1 > LONGEST_RANGE_DAYS:
        raise ValidationFailed(f"a report covers at most {LONGEST_RANGE_DAYS} days; ask for "
                               "longer periods in parts")


def sales_report(wallets: WalletView, wallet_id: UUID, first: date, last: date,
                 today: date) -> SalesReport:
    """The wallet's sales from `first` to `last` (UTC days, both included)."""
    checked_range(first, last, today)
    wallet = wallets.wallet(wallet_id)
    if wallet is None:
        raise NotFound("wallet not found")
    start = datetime.combine(first, datetime.min.time(), UTC)
    rows = {row["day"]: row for row in wallets.sales_by_day(
        wallet_id, start, start + timedelta(days=(last - first).days + 1))}
    days = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        row = rows.get(day)
        days.append(SalesDay(day, row["count"], row["gross"], row["refunds"], row["fees"])
                    if row else SalesDay(day, 0, 0, 0, 0))
    return SalesReport(wallet_id, wallet["currency"], first, last, tuple(days))


def day_fields(day: SalesDay) -> dict[str, object]:
    return {**asdict(day), "net": day.net}


def sales_csv(report: SalesReport) -> str:
    """The days as the JSON answer gives them, one row each, amounts in minor units."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for day in report.days:
        writer.writerow((day.date.isoformat(), day.count, day.gross, day.refunds, day.fees,
                         day.net, report.currency))
    return buffer.getvalue()
