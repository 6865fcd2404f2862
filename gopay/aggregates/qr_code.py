"""Merchant QR codes: the terms a QR code offers, and the one payment a fixed-amount code takes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import DomainError, InvalidState, ValidationFailed
from gopay.aggregates.ledger import LEDGER_NAMESPACE


class QrInvalid(DomainError):
    """A payload GoPay did not sign, or signed with other terms (altered)."""

    code = "qr_invalid"


class QrExpired(DomainError):
    code = "qr_expired"


class QrAlreadyPaid(InvalidState):
    """A fixed-amount QR code is paid once."""


@dataclass(frozen=True)
class QrTerms:
    """What a QR code offers a payer: everything its signed payload carries.

    An open-amount code (`amount` None) is paid any number of times, for the amount the
    payer enters; a fixed-amount code is paid once, for its amount.
    """

    qr_id: UUID
    merchant_wallet_id: UUID
    amount: int | None
    currency: str
    reference: str
    expires_at: datetime | None

    @property
    def fixed(self) -> bool:
        return self.amount is not None

    def amount_to_pay(self, offered: int | None) -> int:
        """The amount a payment of these terms moves; `offered` is what the payer entered."""
        if self.amount is None:
            if offered is None:
                raise ValidationFailed("this QR code has an open amount: say how much to pay")
            return offered
        if offered is not None and offered != self.amount:
            raise ValidationFailed(f"this QR code is for {self.amount}; its amount cannot change")
        return self.amount

    def check_open(self, now: datetime) -> None:
        """Refuse a payment after the code's expiry."""
        if self.expires_at is not None and now >= self.expires_at:
            raise QrExpired(f"this QR code expired at {self.expires_at.isoformat()}")


class QrCode(Aggregate):
    """A QR code a merchant shows, with the terms it was made with."""

    @staticmethod
    def id_for(merchant_id: UUID, idempotency_key: str) -> UUID:
        """A keyed request's code: a retry finds the code the first one made."""
        return uuid5(LEDGER_NAMESPACE, f"qr/{merchant_id}/{idempotency_key}")

    class Created(Aggregate.Created):
        merchant_id: UUID
        wallet_id: UUID
        amount: int | None
        currency: str
        reference: str
        expires_at: str | None
        request_fingerprint: str

    @event(Created)
    def __init__(self, id: UUID, merchant_id: UUID, wallet_id: UUID, amount: int | None,
                 currency: str, reference: str, expires_at: str | None,
                 request_fingerprint: str) -> None:
        self.merchant_id = merchant_id
        self.wallet_id = wallet_id
        self.amount = amount
        self.currency = currency
        self.reference = reference
        self.expires_at = expires_at
        self.request_fingerprint = request_fingerprint
        self.payment_id: UUID | None = None

    @property
    def terms(self) -> QrTerms:
        return QrTerms(qr_id=self.id, merchant_wallet_id=self.wallet_id, amount=self.amount,
                       currency=self.currency, reference=self.reference,
                       expires_at=datetime.fromisoformat(self.expires_at) if self.expires_at else None)

    def pay(self, *, payment_id: UUID, payer_wallet_id: UUID) -> None:
        """A fixed-amount code is paid once; an open-amount code is never changed by paying it."""
        if self.amount is None:
            raise InvalidState("an open-amount QR code does not record its payments")
        if self.payment_id is not None:
            raise QrAlreadyPaid("this QR code has already been paid", payment_id=str(self.payment_id))
        self._paid(payment_id=payment_id, payer_wallet_id=payer_wallet_id)

    class Paid(Aggregate.Event):
        payment_id: UUID
        payer_wallet_id: UUID

    @event(Paid)
    def _paid(self, payment_id: UUID, payer_wallet_id: UUID) -> None:
        self.payment_id = payment_id
