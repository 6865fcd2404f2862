"""Merchant API keys: a secret a merchant's server signs in with, kept only as its hash."""

from __future__ import annotations

import hashlib
import hmac
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.ledger import LEDGER_NAMESPACE


def secret_digest(secret: str) -> str:
    """SHA-256 of a key's secret, hex: all GoPay keeps of it.

    A plain hash is enough here, unlike for passwords: the secret is 256 random bits, so
    nobody can search for it from its hash, and a fast hash keeps every API call cheap.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKey(Aggregate):
    """One key of one merchant: named, shown as prefix and last four, revocable."""

    @staticmethod
    def id_for(owner_id: UUID, idempotency_key: str) -> UUID:
        """A keyed request's key: a retry finds the key the first one issued."""
        return uuid5(LEDGER_NAMESPACE, f"api-key/{owner_id}/{idempotency_key}")

    class Issued(Aggregate.Created):
        owner_id: UUID
        wallet_id: UUID
        name: str
        prefix: str
        last4: str
        digest: str
        request_fingerprint: str

    @event(Issued)
    def __init__(self, id: UUID, owner_id: UUID, wallet_id: UUID, name: str, prefix: str,
                 last4: str, digest: str, request_fingerprint: str) -> None:
        self.owner_id = owner_id
        self.wallet_id = wallet_id
        self.name = name
        self.prefix = prefix
        self.last4 = last4
        self.digest = digest
        self.request_fingerprint = request_fingerprint
        self.revoked = False

    def admits(self, secret: str) -> bool:
        """Whether `secret` is this key's, and the key is still alive."""
        return not self.revoked and hmac.compare_digest(self.digest, secret_digest(secret))

    def revoke(self, *, by: UUID) -> None:
        """Stop the key working; revoking it again changes nothing."""
        if not self.revoked:
            self._revoked(by=by)

    class Revoked(Aggregate.Event):
        by: UUID

    @event(Revoked)
    def _revoked(self, by: UUID) -> None:
        self.revoked = True
