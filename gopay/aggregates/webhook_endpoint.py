"""Merchant webhook endpoints: where GoPay sends a merchant's events, and which ones."""

from __future__ import annotations

from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import ValidationFailed
from gopay.aggregates.ledger import LEDGER_NAMESPACE

# The events a merchant may subscribe to (those GoPay does not send yet are accepted too,
# so that an integration can be set up before its flow exists).
EVENT_TYPES = ("payment.succeeded", "refund.succeeded", "payout.paid", "payout.failed",
               "dispute.opened")


def subscription(events: tuple[str, ...]) -> tuple[str, ...]:
    """The event types asked for, each once, in order; refused when empty or unknown."""
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown or not events:
        raise ValidationFailed(f"events must be one or more of {', '.join(EVENT_TYPES)}")
    return tuple(sorted(set(events)))


class WebhookEndpoint(Aggregate):
    """A merchant's URL and the event types it wants."""

    @staticmethod
    def id_for(owner_id: UUID, idempotency_key: str) -> UUID:
        return uuid5(LEDGER_NAMESPACE, f"webhook-endpoint/{owner_id}/{idempotency_key}")

    class Created(Aggregate.Created):
        owner_id: UUID
        wallet_id: UUID
        url: str
        events: tuple[str, ...]
        request_fingerprint: str

    @event(Created)
    def __init__(self, id: UUID, owner_id: UUID, wallet_id: UUID, url: str,
                 events: tuple[str, ...], request_fingerprint: str) -> None:
        self.owner_id = owner_id
        self.wallet_id = wallet_id
        self.url = url
        self.events = tuple(sorted(set(events)))
        self.request_fingerprint = request_fingerprint
        self.removed = False

    def remove(self, *, by: UUID) -> None:
        """Send it nothing more; removing it again changes nothing."""
        if not self.removed:
            self._removed(by=by)

    class Removed(Aggregate.Event):
        by: UUID

    @event(Removed)
    def _removed(self, by: UUID) -> None:
        self.removed = True
