"""Mobile operators: the networks whose airtime customers buy, and what GoPay owes each of them.

An operator is not a GoPay customer. Each one has a payable account (a `Wallet` owned by the
operator) that every recharge the operator carried out credits: what GoPay owes it for the
airtime, until it is settled.
"""

from __future__ import annotations

from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.ledger import LEDGER_NAMESPACE


class MobileOperator(Aggregate):
    """An operator as staff set it up: its name, country, currency and payable account."""

    @staticmethod
    def id_for(created_by: UUID, idempotency_key: str) -> UUID:
        """The id a staff member's idempotency key stands for: a retry finds the same operator."""
        return uuid5(LEDGER_NAMESPACE, f"mobile-operator/{created_by}/{idempotency_key}")

    class Created(Aggregate.Created):
        name: str
        country: str
        currency: str
        wallet_id: UUID
        created_by: UUID
        request_fingerprint: str

    @event(Created)
    def __init__(self, id: UUID, name: str, country: str, currency: str, wallet_id: UUID,
                 created_by: UUID, request_fingerprint: str) -> None:
        self.name = name
        self.country = country
        self.currency = currency
        self.wallet_id = wallet_id  # the payable account
        self.created_by = created_by
        self.request_fingerprint = request_fingerprint
