"""What the business analytics look like over HTTP: per UTC day, amounts per currency in minor units."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

# Amounts by ISO 4217 currency, in minor units.
Amounts = dict[str, int]


class TypeFigures(BaseModel):
    """Succeeded payments of one type: how many, and how much per currency."""

    count: int
    volume: Amounts


class PeriodFigures(BaseModel):
    """What happened in a day, or in the whole period."""

    by_type: dict[str, TypeFigures] = Field(description="Succeeded payment orders by transaction type")
    fees: Amounts = Field(description="GoPay's fees customers paid (their `fee` lines)")
    fee_count: int
    new_users: int = Field(description="Customers who registered")
    active_users: int = Field(description="Customers whose wallet sent or received money "
                                          "(over a period: different customers)")
    payments: int = Field(description="Payment orders that succeeded")
    failed: int = Field(description="Payment orders that failed (declined, refused, cancelled)")
    failed_volume: Amounts


class AnalyticsDay(PeriodFigures):
    date: dt.date


class AnalyticsReport(BaseModel):
    """Every UTC day of the period, empty ones included, and the totals."""

    model_config = ConfigDict(populate_by_name=True)

    from_: dt.date = Field(alias="from")
    to: dt.date
    days: list[AnalyticsDay]
    totals: PeriodFigures
