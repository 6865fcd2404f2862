"""A wallet's monthly statement: opening balance, every line of the month, closing balance.

Built from the wallet history read model (the rows `GET /v1/wallet/transactions` shows), never
from the event table: a statement is a view of what the customer already sees, for a month.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from gopay.aggregates.errors import NotFound, ValidationFailed
from gopay.projections.wallets import WalletView

MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
# Statements of months this far ahead of today are refused: nobody asks for one but by mistake.
MONTHS_AHEAD = 12
EARLIEST_YEAR = 2000


def month_of(text: str, today: date) -> date:
    """The first day of the month `text` (YYYY-MM) names; ValidationFailed unless it is a real
    month from 2000 up to a year ahead of `today`."""
    match = MONTH.fullmatch(text)
    if match is None or not 1 <= int(match[2]) <= 12:
        raise ValidationFailed(f"{text!r} is not a month: write it YYYY-MM, e.g. 2026-02")
    if int(match[1]) < EARLIEST_YEAR:
        raise ValidationFailed(f"GoPay keeps no statements before {EARLIEST_YEAR}")
    month = date(int(match[1]), int(match[2]), 1)
    if (month.year - today.year) * 12 + month.month - today.month > MONTHS_AHEAD:
        raise ValidationFailed(f"{text} is too far ahead: no statement exists for it yet")
    return month


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


@dataclass(frozen=True)
class StatementLine:
    """One line of the wallet's history, as the statement prints it."""

    id: UUID
    at: datetime
    type: str
    direction: str
    amount: int
    counterparty: str
    reference: str
    balance_after: int


@dataclass(frozen=True)
class Statement:
    """A wallet's month, in its currency: what it held at the start, each line, what it held at the end."""

    holder: str
    wallet_id: UUID
    currency: str
    month: date  # its first day
    issued_at: datetime
    opening_balance: int
    lines: tuple[StatementLine, ...]

    @property
    def period_end(self) -> date:
        """The first day after the month."""
        return next_month(self.month)

    @property
    def closing_balance(self) -> int:
        return self.lines[-1].balance_after if self.lines else self.opening_balance

    @property
    def money_in(self) -> int:
        return sum(line.amount for line in self.lines if line.direction == "credit")

    @property
    def money_out(self) -> int:
        return sum(line.amount for line in self.lines if line.direction == "debit")

    @property
    def complete(self) -> bool:
        """Whether the month was over when the statement was made (else it shows it so far)."""
        return self.issued_at >= datetime.combine(self.period_end, datetime.min.time(), UTC)


def monthly_statement(wallets: WalletView, holder: dict[str, Any], month: date,
                      issued_at: datetime) -> Statement:
    """The statement of `holder`'s wallet (a row of the directory) for `month`."""
    wallet_id = holder.get("wallet_id")
    wallet = wallets.wallet(wallet_id) if wallet_id else None
    if wallet is None:
        raise NotFound("wallet not found")
    start = datetime.combine(month, datetime.min.time(), UTC)
    end = datetime.combine(next_month(month), datetime.min.time(), UTC)
    opening, rows = wallets.lines_between(wallet["wallet_id"], start, end)
    return Statement(
        holder=holder.get("business_name") or holder["full_name"], wallet_id=wallet["wallet_id"],
        currency=wallet["currency"], month=month, issued_at=issued_at, opening_balance=opening,
        lines=tuple(StatementLine(
            id=row["entry_id"], at=row["created_at"], type=row["type"], direction=row["direction"],
            amount=row["amount"], counterparty=row["counterparty"], reference=row["reference"],
            balance_after=row["balance_after"]) for row in rows))
