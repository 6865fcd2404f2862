"""Posting rules of the double-entry ledger: journal entries and the system accounts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from gopay.aggregates.errors import Unbalanced
from gopay.aggregates.money import CURRENCIES

LEDGER_NAMESPACE = uuid5(NAMESPACE_URL, "https://gopay.example/ledger")


class TransactionType(StrEnum):
    """What a payment order does, and what a line of a wallet's history is: declared once."""

    TOPUP = "topup"
    PAYOUT = "payout"
    TRANSFER = "transfer"
    QR_PAYMENT = "qr_payment"
    BILL_PAYMENT = "bill_payment"
    RECHARGE = "recharge"
    CASH_IN = "cash_in"
    CASH_OUT = "cash_out"
    REFUND = "refund"
    FEE = "fee"  # a line only: the fee an order charged, never an order of its own
    COMMISSION = "commission"  # a line only: what an agent earned on a cash-in or cash-out
    SETTLEMENT = "settlement"
    ADJUSTMENT = "adjustment"


class SystemAccount(StrEnum):
    """GoPay's own accounts: the other side of money entering, leaving or being corrected.

    They may go negative and carry no rule of their own, so they are not aggregates: their
    postings live only in journal entries, and no command ever waits on one of them (hot
    accounts such as PSP clearing never serialize throughput).
    """

    PSP_CLEARING = "psp_clearing"
    PAYOUT_CLEARING = "payout_clearing"
    FEES = "fees"
    ADJUSTMENTS = "adjustments"
    SUSPENSE = "suspense"
    # What customers owe GoPay: a chargeback their wallet could not cover.
    RECEIVABLES = "receivables"

    def account_id(self, currency: str) -> UUID:
        return uuid5(LEDGER_NAMESPACE, f"system/{self.value}/{currency}")


def system_account_names() -> dict[UUID, str]:
    """Map every system account id (any currency) back to its name, for the read side."""
    return {
        account.account_id(currency): account.value
        for account in SystemAccount
        for currency in CURRENCIES
    }


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg of a journal entry: the change of one account's balance."""

    account_id: UUID
    amount: int
    currency: str

    def as_record(self) -> dict[str, object]:
        return {"account_id": str(self.account_id), "amount": self.amount,
                "currency": self.currency}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Posting:
        return cls(UUID(str(record["account_id"])), int(record["amount"]), str(record["currency"]))

    def __neg__(self) -> Posting:
        return Posting(self.account_id, -self.amount, self.currency)


def journal_entry(*postings: Posting) -> tuple[Posting, ...]:
    """Check that postings form a valid entry: two or more non-zero legs summing to zero per currency."""
    if len(postings) < 2:
        raise Unbalanced("a journal entry needs at least two postings")
    totals: dict[str, int] = defaultdict(int)
    for posting in postings:
        if type(posting.amount) is not int or posting.amount == 0:
            raise Unbalanced("every posting moves a non-zero integer amount")
        totals[posting.currency] += posting.amount
    if any(totals.values()):
        raise Unbalanced(f"postings do not balance: {dict(totals)}")
    return postings
