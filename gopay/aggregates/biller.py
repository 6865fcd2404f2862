"""Billers: the companies customers pay bills to, and where GoPay settles what it owes them.

A biller is not a GoPay customer: nobody signs in as one. GoPay keeps the money customers
pay it in a wallet of its own (the biller's payable account, a `Wallet` owned by the biller)
until staff settle it by payout to the biller's bank account, a payment method owned by
the biller (its IBAN in the vault, like a customer's).
"""

from __future__ import annotations

from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.ledger import LEDGER_NAMESPACE


class Biller(Aggregate):
    """A biller as staff set it up: its name, category, currency and payable account."""

    @staticmethod
    def id_for(created_by: UUID, idempotency_key: str) -> UUID:
        """The id a staff member's idempotency key stands for: a retry finds the same biller."""
        return uuid5(LEDGER_NAMESPACE, f"biller/{created_by}/{idempotency_key}")

    class Created(Aggregate.Created):
        name: str
        category: str
        currency: str
        wallet_id: UUID
        created_by: UUID
        request_fingerprint: str

    @event(Created)
    def __init__(self, id: UUID, name: str, category: str, currency: str, wallet_id: UUID,
                 created_by: UUID, request_fingerprint: str) -> None:
        self.name = name
        self.category = category
        self.currency = currency
        self.wallet_id = wallet_id  # the payable account
        self.created_by = created_by
        self.request_fingerprint = request_fingerprint
        self.bank_account_id: UUID | None = None
        self.bank_account_shown = ""

    def set_bank_account(self, method_id: UUID, shown: str, *, by: UUID) -> None:
        """Settle to this bank account (a payment method owned by the biller) from now on."""
        if method_id != self.bank_account_id:
            self._bank_account_set(method_id=method_id, shown=shown, by=by)

    class BankAccountSet(Aggregate.Event):
        method_id: UUID
        shown: str  # country and last four, as statements name it
        by: UUID

    @event(BankAccountSet)
    def _bank_account_set(self, method_id: UUID, shown: str, by: UUID) -> None:
        self.bank_account_id = method_id
        self.bank_account_shown = shown
