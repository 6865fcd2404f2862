"""The vault: full card numbers, IBANs, wallet accounts and crypto addresses, sealed, in a table of their own.

A secret is sealed (AES-GCM) under its owner's data key and bound to its payment method, so
a row copied to another method or owner does not open. Events never see it; they carry a
keyed fingerprint instead: HMAC-SHA256 under a key derived from the owner's data key. It
spots the same card twice for one owner, tells nobody without the key anything (a plain
hash of a card number is brute-forced in minutes), cannot link one owner's cards to
another's, and survives master key rotation, which re-wraps the data key but never changes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Protocol
from uuid import UUID

from gopay.security.data_keys import DataKeys, SealBroken

# One row per (method, secret): a keyed retry whose first try was refused never leaves that
# try's number behind under the id the retry ends up using.
CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS vault_secrets (
    payment_method_id uuid NOT NULL,
    fingerprint text NOT NULL,
    owner_id uuid NOT NULL,
    sealed text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (payment_method_id, fingerprint)
)"""


class SecretStore(Protocol):
    """Where sealed secrets are kept, one per (payment method, fingerprint)."""

    def add(self, method_id: UUID, fingerprint: str, owner_id: UUID, sealed: str) -> bool:
        """Keep `sealed`; False when this method already keeps this fingerprint's secret."""

    def find(self, method_id: UUID, fingerprint: str, owner_id: UUID) -> str | None: ...

    def remove(self, method_id: UUID, fingerprint: str | None) -> None: ...


class Vault:
    """Keeps, opens and forgets sealed secrets."""

    def __init__(self, data_keys: DataKeys, store: SecretStore) -> None:
        self.data_keys = data_keys
        self.store = store

    def digest(self, owner_id: UUID, purpose: str, text: str) -> str:
        """HMAC-SHA256 of `text` under the owner's key for `purpose`, base64url.

        Base64url rather than hex, so that no digest ever contains a run of digits that a
        scan for card numbers would mistake for one.
        """
        key = self.data_keys.derive(owner_id, f"hmac/{purpose}")
        mac = hmac.new(key, text.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def keep(self, owner_id: UUID, method_id: UUID, fingerprint: str, secret: str) -> bool:
        """Store the sealed secret; False when this method already keeps this secret."""
        sealed = self.data_keys.seal(owner_id, _purpose(method_id), secret)
        return self.store.add(method_id, fingerprint, owner_id, sealed)

    def open(self, owner_id: UUID, method_id: UUID, fingerprint: str) -> str:
        sealed = self.store.find(method_id, fingerprint, owner_id)
        if sealed is None:
            raise SealBroken(f"the vault holds no secret for payment method {method_id}")
        return self.data_keys.unseal(owner_id, _purpose(method_id), sealed)

    def discard(self, method_id: UUID, fingerprint: str | None = None) -> None:
        """Forget a method's secrets (or only the one with `fingerprint`)."""
        self.store.remove(method_id, fingerprint)


class PostgresSecretStore:
    """The `vault_secrets` table, in the event store's database."""

    def __init__(self, datastore: Any) -> None:
        self.datastore = datastore  # the eventsourcing PostgresDatastore

    def add(self, method_id: UUID, fingerprint: str, owner_id: UUID, sealed: str) -> bool:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "INSERT INTO vault_secrets (payment_method_id, fingerprint, owner_id, sealed) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (method_id, fingerprint, owner_id, sealed))
            return bool(cursor.rowcount == 1)

    def find(self, method_id: UUID, fingerprint: str, owner_id: UUID) -> str | None:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT sealed FROM vault_secrets "
                "WHERE payment_method_id = %s AND fingerprint = %s AND owner_id = %s",
                (method_id, fingerprint, owner_id))
            row = cursor.fetchone()
        return None if row is None else str(row["sealed"])

    def remove(self, method_id: UUID, fingerprint: str | None) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "DELETE FROM vault_secrets WHERE payment_method_id = %s "
                "AND (%s::text IS NULL OR fingerprint = %s)", (method_id, fingerprint, fingerprint))


class MemorySecretStore:
    """Sealed secrets in a dict: for an application on in-memory persistence."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[UUID, str], tuple[UUID, str]] = {}

    def add(self, method_id: UUID, fingerprint: str, owner_id: UUID, sealed: str) -> bool:
        if (method_id, fingerprint) in self.secrets:
            return False
        self.secrets[(method_id, fingerprint)] = (owner_id, sealed)
        return True

    def find(self, method_id: UUID, fingerprint: str, owner_id: UUID) -> str | None:
        owner, sealed = self.secrets.get((method_id, fingerprint), (None, None))
        return sealed if owner == owner_id else None

    def remove(self, method_id: UUID, fingerprint: str | None) -> None:
        for key in [k for k in self.secrets if k[0] == method_id
                    and fingerprint in (None, k[1])]:
            del self.secrets[key]


def _purpose(method_id: UUID) -> str:
    return f"vault/{method_id}"
