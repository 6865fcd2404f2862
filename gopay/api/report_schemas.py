"""What the reports endpoints answer in JSON: a merchant's sales per day."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class SalesDayPublic(BaseModel):
    """One UTC day (or, as `totals`, the whole range), amounts in minor units."""

    date: date
    count: int
    gross: int
    refunds: int
    fees: int
    net: int


class SalesReportPublic(BaseModel):
    """Every day of the range, days without sales as zeros, and the range's totals."""

    model_config = ConfigDict(populate_by_name=True)

    wallet_id: UUID
    currency: str
    # `from` is a Python keyword: the field is named for the query parameter it echoes.
    from_: date = Field(alias="from")
    to: date
    data: list[SalesDayPublic]
    totals: SalesDayPublic
