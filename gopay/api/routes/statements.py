"""The caller's monthly statements: CSV or PDF, from the wallet history read model."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from gopay.api.deps import Customer, SystemDep
from gopay.api.problems import Problem
from gopay.reports.statement_files import statement_csv, statement_pdf
from gopay.reports.statements import month_of, monthly_statement

router = APIRouter(prefix="/v1/wallet/statements", tags=["wallet"])


class StatementFormat(StrEnum):
    CSV = "csv"
    PDF = "pdf"


MEDIA_TYPES = {StatementFormat.CSV: "text/csv; charset=utf-8",
               StatementFormat.PDF: "application/pdf"}


@router.get("/{month}", response_class=Response, responses={200: {"content": {
    "text/csv": {"schema": {"type": "string"}},
    "application/pdf": {"schema": {"type": "string", "format": "binary"}}}}})
def statement(caller: Customer, system: SystemDep,
              month: Annotated[str, Path(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$",
                                         description="The month, YYYY-MM (UTC), from 2000 to a "
                                         "year ahead", examples=["2026-02"])],
              format: Annotated[StatementFormat, Query()] = StatementFormat.CSV) -> Response:
    """The wallet's statement of a month: opening balance, every line with the balance it
    left, totals in and out, closing balance. The current month shows what happened so far."""
    now = system.commands.context.clock()
    first_day = month_of(month, now.date())
    system.catch_up_reads()
    holder = system.read_side.directory.user(caller.user_id)
    if holder is None or caller.wallet_id is None:
        raise Problem(404, "wallet not found")
    statement = monthly_statement(system.read_side.wallets, holder, first_day, now)
    name = f"gopay-statement-{first_day:%Y-%m}-{statement.wallet_id}.{format.value}"
    body = statement_csv(statement) if format == StatementFormat.CSV else statement_pdf(statement)
    return Response(body, media_type=MEDIA_TYPES[format],
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})
