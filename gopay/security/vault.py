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


class Vault:
    """Keeps, opens and forgets sealed secrets; the data keys' datastore holds the table."""

    def __init__(self, data_keys: DataKeys) -> None:
        self.data_keys = data_keys

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
        with self.data_keys.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "INSERT INTO vault_secrets (payment_method_id, fingerprint, owner_id, sealed) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (method_id, fingerprint, owner_id, sealed))
            return cursor.rowcount == 1

    def open(self, owner_id: UUID, method_id: UUID, fingerprint: str) -> str:
        with self.data_keys.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT sealed FROM vault_secrets "
                "WHERE payment_method_id = %s AND fingerprint = %s AND owner_id = %s",
                (method_id, fingerprint, owner_id))
            row = cursor.fetchone()
        if row is None:
            raise SealBroken(f"the vault holds no secret for payment method {method_id}")
        return self.data_keys.unseal(owner_id, _purpose(method_id), row["sealed"])

    def discard(self, method_id: UUID, fingerprint: str | None = None) -> None:
        """Forget a method's secrets (or only the one with `fingerprint`)."""
        with self.data_keys.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "DELETE FROM vault_secrets WHERE payment_method_id = %s "
                "AND (%s::text IS NULL OR fingerprint = %s)", (method_id, fingerprint, fingerprint))


def _purpose(method_id: UUID) -> str:
    return f"vault/{method_id}"
