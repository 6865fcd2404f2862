"""Saved payment methods: each one as it may be shown, and the set one customer keeps.

Events hold masked details and a keyed fingerprint, never a full number: the number is in
the vault (gopay/security/vault.py). The holder's name is personal data and is sealed in the
stored events; `SealingMapper` seals under the originator id, so it is this payment method's
own data key that seals it (one small key per method, re-wrapped by rotation like the rest),
while the vault seals the number under the owner's data key.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import DomainError, NotFound, ValidationFailed
from gopay.aggregates.ledger import LEDGER_NAMESPACE


class PaymentMethodExists(DomainError):
    """The owner already keeps this card (or account, or address)."""

    code = "payment_method_exists"

    def __init__(self, existing_id: UUID) -> None:
        super().__init__("this payment method is already saved",
                         payment_method_id=str(existing_id))
        self.existing_id = existing_id


def method_id_for(owner_id: UUID, idempotency_key: str) -> UUID:
    """The id a caller's idempotency key stands for: a retry finds the same method."""
    return uuid5(LEDGER_NAMESPACE, f"payment-method/{owner_id}/{idempotency_key}")


class PaymentMethod(Aggregate):
    """A card, bank account, digital wallet or crypto address that a customer saved."""

    class Added(Aggregate.Created):
        owner_id: UUID
        method_type: str
        details: dict[str, Any]
        holder_name: str | None
        fingerprint: str
        request_digest: str | None

    @event(Added)
    def __init__(self, id: UUID, owner_id: UUID, method_type: str, details: Mapping[str, Any],
                 holder_name: str | None, fingerprint: str,
                 request_digest: str | None) -> None:
        self.owner_id = owner_id
        self.method_type = method_type
        self.details: Mapping[str, Any] = MappingProxyType(dict(details))
        self.holder_name = holder_name
        self.fingerprint = fingerprint
        self.request_digest = request_digest
        self.removed = False

    def remove(self) -> None:
        if self.removed:
            raise NotFound("payment method not found")
        self._removed()

    class Removed(Aggregate.Event):
        pass

    @event(Removed)
    def _removed(self) -> None:
        self.removed = True


class SavedMethods(Aggregate):
    """One customer's payment methods in the order added, and the fingerprints in use.

    One aggregate per owner, so that a second copy of the same card is refused atomically.
    """

    @staticmethod
    def id_for(owner_id: UUID) -> UUID:
        return uuid5(LEDGER_NAMESPACE, f"payment-methods/{owner_id}")

    @event("Opened")
    def __init__(self, id: UUID, owner_id: UUID) -> None:
        self.owner_id = owner_id
        self.method_ids: tuple[UUID, ...] = ()  # every method ever added, removed ones too
        self.in_use: Mapping[str, UUID] = MappingProxyType({})  # fingerprint -> its method

    def add(self, method_id: UUID, fingerprint: str) -> None:
        existing = self.in_use.get(fingerprint)
        if existing is not None:
            raise PaymentMethodExists(existing)
        self._added(method_id=method_id, fingerprint=fingerprint)

    def remove(self, method_id: UUID) -> None:
        if method_id not in self.in_use.values():
            raise NotFound("payment method not found")
        self._removed(method_id=method_id)

    def newest_first(self, after: UUID | None = None) -> list[UUID]:
        """The methods in use, newest first; with `after`, only those added before it."""
        end = len(self.method_ids)
        if after is not None:
            if after not in self.method_ids:
                raise ValidationFailed("cursor is not valid")
            end = self.method_ids.index(after)
        in_use = set(self.in_use.values())
        return [i for i in reversed(self.method_ids[:end]) if i in in_use]

    @event("MethodAdded")
    def _added(self, method_id: UUID, fingerprint: str) -> None:
        self.method_ids = (*self.method_ids, method_id)
        self.in_use = MappingProxyType({**self.in_use, fingerprint: method_id})

    @event("MethodRemoved")
    def _removed(self, method_id: UUID) -> None:
        self.in_use = MappingProxyType({f: i for f, i in self.in_use.items() if i != method_id})


# Personal data, sealed in the stored events (gopay/security/sealing.py).
PAYMENT_METHOD_SEALED_FIELDS: dict[type, tuple[str, ...]] = {
    PaymentMethod.Added: ("holder_name",),
}
