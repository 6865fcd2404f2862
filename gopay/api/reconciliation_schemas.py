"""Response bodies of reconciliation runs, their findings and the payout report."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from gopay.api.schemas import UtcDatetime

FindingKind = Literal["missing_in_ledger", "missing_in_psp", "amount_mismatch",
                      "status_mismatch", "fee_mismatch", "duplicates"]


class ReconciliationSummary(BaseModel):
    matched: int
    missing_in_ledger: int
    missing_in_psp: int
    amount_mismatch: int
    status_mismatch: int
    fee_mismatch: int
    duplicates: int


class ReconciliationRunPublic(BaseModel):
    id: UUID
    file_sha256: str
    file_name: str
    status: Literal["running", "completed", "abandoned"]
    source: str = Field(description="upload, cli or scheduled")
    period: list[str] = Field(description="The UTC days compared, whole")
    lines: int
    summary: ReconciliationSummary | None
    items_url: str
    report_url: str
    started_by: UUID | None
    started_at: UtcDatetime
    finished_at: UtcDatetime | None
    abandoned_because: str | None = Field(
        None, description="Why an abandoned run's file is no settlement file GoPay can read")


class DifferencePublic(BaseModel):
    """How much more the PSP holds than the clearing account says (less when negative)."""

    account: str
    amount: int
    currency: str


class ReconciliationItemPublic(BaseModel):
    id: UUID
    kind: FindingKind
    psp_reference: str | None
    merchant_reference: str | None
    expected: dict[str, Any] | None = Field(description="What GoPay's ledger says")
    actual: dict[str, Any] | None = Field(description="What the PSP's file says")
    cause: str
    order_ids: list[UUID]
    line: int | None = Field(description="The file's line (the header is line 1)")
    difference: DifferencePublic | None
    suspense_order_id: UUID | None


class SuspensePostingPublic(BaseModel):
    item_id: UUID
    order_id: UUID
    account: str = Field(description="The clearing account corrected")
    amount: int = Field(description="Into suspense when positive, out of it when negative")
    currency: str


class PayoutReportLine(BaseModel):
    id: UUID
    wallet_id: UUID | None
    amount: int
    currency: str
    fee: int = Field(description="What GoPay booked as the PSP's fee")
    status: str
    psp_reference: str | None
    created_at: UtcDatetime
    settled_at: UtcDatetime | None
    merchant_id: UUID | None = Field(default=None, description="The merchant whose payout "
                                     "schedule made it (null: asked for by the wallet's owner)")
    schedule_period: str | None = Field(default=None, description="The schedule's period it "
                                        "paid out: YYYY-MM-DD or YYYY-Www")


class PayoutReportPage(BaseModel):
    date: str
    data: list[PayoutReportLine]
    next_cursor: str | None
