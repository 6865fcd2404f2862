"""Payment requests: one user asks another for money, who pays it (a transfer), declines or lets it expire."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import InvalidState


class RequestStatus(StrEnum):
    OPEN = "open"
    PAID = "paid"
    DECLINED = "declined"
    CANCELLED = "cancelled"  # by the requester
    EXPIRED = "expired"


class PaymentRequest(Aggregate):
    """Who asks whom for how much, until when, and how it was answered.

    It is paid at most once: paying changes it in the same batch as the transfer, so a second
    payment, at once or later, finds it paid.
    """

    class Created(Aggregate.Created):
        requester_id: UUID
        requester_wallet_id: UUID
        payer_id: UUID
        payer_wallet_id: UUID
        amount: int
        currency: str
        note: str
        expires_at: str
        request_fingerprint: str

    @event(Created)
    def __init__(self, id: UUID, requester_id: UUID, requester_wallet_id: UUID, payer_id: UUID,
                 payer_wallet_id: UUID, amount: int, currency: str, note: str, expires_at: str,
                 request_fingerprint: str) -> None:
        self.requester_id = requester_id
        self.requester_wallet_id = requester_wallet_id
        self.payer_id = payer_id
        self.payer_wallet_id = payer_wallet_id
        self.amount = amount
        self.currency = currency
        self.note = note
        self.expires_at = expires_at
        self.request_fingerprint = request_fingerprint
        self.status = RequestStatus.OPEN
        self.order_id: UUID | None = None  # the transfer that paid it

    def expired_at(self, now: datetime) -> bool:
        return now >= datetime.fromisoformat(self.expires_at)

    def pay(self, *, order_id: UUID, now: datetime) -> None:
        """Paid by the transfer `order_id`, saved with it."""
        self._check_open(now)
        self._paid(order_id=order_id)

    def decline(self, *, now: datetime) -> None:
        """The payer says no; declining again changes nothing."""
        if self.status != RequestStatus.DECLINED:
            self._check_open(now)
            self._declined()

    def cancel(self, *, now: datetime) -> None:
        """The requester withdraws it; cancelling again changes nothing."""
        if self.status != RequestStatus.CANCELLED:
            self._check_open(now)
            self._cancelled()

    def expire(self, *, now: datetime) -> None:
        """Record that nobody answered it in time (the scheduler does, when it is due)."""
        if self.status == RequestStatus.OPEN and self.expired_at(now):
            self._expired()

    def _check_open(self, now: datetime) -> None:
        if self.status != RequestStatus.OPEN:
            raise InvalidState(f"this payment request is {self.status}")
        if self.expired_at(now):
            raise InvalidState("this payment request has expired")

    class Paid(Aggregate.Event):
        order_id: UUID

    @event(Paid)
    def _paid(self, order_id: UUID) -> None:
        self.status = RequestStatus.PAID
        self.order_id = order_id

    class Declined(Aggregate.Event):
        """The payer said no."""

    @event(Declined)
    def _declined(self) -> None:
        self.status = RequestStatus.DECLINED

    class Cancelled(Aggregate.Event):
        """The requester withdrew it."""

    @event(Cancelled)
    def _cancelled(self) -> None:
        self.status = RequestStatus.CANCELLED

    class Expired(Aggregate.Event):
        """Nobody answered it in time."""

    @event(Expired)
    def _expired(self) -> None:
        self.status = RequestStatus.EXPIRED
