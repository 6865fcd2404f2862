"""Data keys: one AES-256 key per subject (a user), kept wrapped by the key ring.

Personal fields and vaulted card numbers are sealed with their owner's data key. Rotating the
master key re-wraps these small keys and never touches the sealed data, so the event store
stays immutable while the old master key can still be deleted. The wrapped keys live in a
`KeyStore`: PostgreSQL's `data_keys` table in production, memory in unit tests.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable
from typing import Any, Protocol
from uuid import UUID

from cachetools import LRUCache
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gopay.security.keyring import NONCE_BYTES, KeyRing

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS data_keys (
    subject_id uuid PRIMARY KEY,
    master_key_id text NOT NULL,
    wrapped bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)"""

SEALED_PREFIX = "sealed:v1:"

# The wrapped keys in the history file (`gopay export`): as JSON lines PostgreSQL writes and
# reads (see gopay/recorder.py), useless without the master keys, which are never in the file.
HISTORY_QUERY = ("SELECT json_build_object('subject_id', subject_id, 'master_key_id', "
                 "master_key_id, 'wrapped', translate(encode(wrapped, 'base64'), E'\\n', ''), "
                 "'created_at', created_at) FROM data_keys ORDER BY subject_id")
HISTORY_LOAD = ("INSERT INTO data_keys (subject_id, master_key_id, wrapped, created_at) "
                "SELECT r.subject_id, r.master_key_id, decode(r.wrapped, 'base64'), r.created_at "
                "FROM {lines} AS l, jsonb_to_record(l.line::jsonb) AS r(subject_id uuid, "
                "master_key_id text, wrapped text, created_at timestamptz)")
# One data key wrapped by each master key in use: whether a key ring can open them all.
ONE_PER_MASTER_KEY = ("SELECT DISTINCT ON (master_key_id) subject_id, master_key_id, wrapped "
                      "FROM data_keys ORDER BY master_key_id, subject_id")
ANY_KEY = "SELECT EXISTS (SELECT FROM data_keys) AS stored"

Wrapped = tuple[str, bytes]  # (master key id, the data key wrapped under it)


class SealBroken(ValueError):
    """A sealed value that does not open with its owner's data key (tampered or misplaced)."""


class KeyStore(Protocol):
    """Where wrapped data keys are kept."""

    def add_or_get(self, subject: UUID, wrapped: Wrapped) -> Wrapped:
        """Keep `wrapped` unless the subject has a key already; the subject's key either way."""

    def rewrap(self, current_id: str, rewrap: Callable[[UUID, Wrapped], Wrapped],
               batch: int) -> int:
        """Re-wrap up to `batch` keys not under `current_id`; how many were."""

    def count_by_master_key(self) -> dict[str, int]: ...


class DataKeys:
    """Per-subject data keys: created on first use, kept unwrapped in this process (LRU)."""

    def __init__(self, key_ring: KeyRing, store: KeyStore, cache_size: int = 100_000) -> None:
        self.key_ring = key_ring
        self.store = store
        self._cache: LRUCache[UUID, AESGCM] = LRUCache(maxsize=cache_size)
        # Derived keys never change (rotation re-wraps the data key, never replaces it):
        # without them kept, every fingerprint check (each PSP call reveals a card) asked the
        # store for the data key again.
        self._derived: LRUCache[tuple[UUID, str], bytes] = LRUCache(maxsize=cache_size)
        self._lock = threading.Lock()

    def seal(self, subject: UUID, purpose: str, text: str) -> str:
        """`text` encrypted under the subject's data key, bound to subject and purpose."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher(subject).encrypt(nonce, text.encode(), _context(subject, purpose))
        return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode()

    def unseal(self, subject: UUID, purpose: str, sealed: str) -> str:
        if not sealed.startswith(SEALED_PREFIX):
            raise SealBroken(f"{purpose} of {subject} is not sealed")
        raw = base64.b64decode(sealed[len(SEALED_PREFIX):])
        try:
            plain = self._cipher(subject).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                                                  _context(subject, purpose))
        except InvalidTag:
            raise SealBroken(f"{purpose} of {subject} does not open") from None
        return plain.decode()

    def derive(self, subject: UUID, purpose: str) -> bytes:
        """A 256-bit key for `purpose` derived from the subject's data key (HKDF-SHA256).

        Rotation re-wraps the data key without changing it, so a derived key (that of the
        vault's fingerprints, say) stays the same across master keys.
        """
        with self._lock:
            derived = self._derived.get((subject, purpose))
        if derived is None:
            hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                        info=b"gopay/derive/" + _context(subject, purpose))
            derived = hkdf.derive(self._load_or_create(subject))
            with self._lock:
                self._derived[(subject, purpose)] = derived
        return derived

    def ensure(self, subject: UUID) -> None:
        """Create the subject's data key now (so that commands never wait for it)."""
        self._cipher(subject)

    def rotate(self, batch: int = 1000) -> int:
        """Re-wrap every data key under the current master key; how many were re-wrapped."""
        def rewrap(subject: UUID, wrapped: Wrapped) -> Wrapped:
            data_key = self.key_ring.unwrap(*wrapped, subject.bytes)
            return self.key_ring.wrap(data_key, subject.bytes)

        rewrapped = 0
        while True:
            done = self.store.rewrap(self.key_ring.current_id, rewrap, batch)
            rewrapped += done
            if done < batch:
                return rewrapped

    def master_keys_in_use(self) -> dict[str, int]:
        """How many data keys each master key wraps (an old key with none can be deleted)."""
        return self.store.count_by_master_key()

    def _cipher(self, subject: UUID) -> AESGCM:
        with self._lock:
            cipher = self._cache.get(subject)
        if cipher is None:
            cipher = AESGCM(self._load_or_create(subject))
            with self._lock:
                self._cache[subject] = cipher
        return cipher

    def _load_or_create(self, subject: UUID) -> bytes:
        fresh = self.key_ring.wrap(AESGCM.generate_key(bit_length=256), subject.bytes)
        key_id, wrapped = self.store.add_or_get(subject, fresh)
        return self.key_ring.unwrap(key_id, wrapped, subject.bytes)


class PostgresKeyStore:
    """The `data_keys` table, in the event store's database."""

    def __init__(self, datastore: Any) -> None:
        self.datastore = datastore  # the eventsourcing PostgresDatastore

    def add_or_get(self, subject: UUID, wrapped: Wrapped) -> Wrapped:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "INSERT INTO data_keys (subject_id, master_key_id, wrapped) VALUES (%s, %s, %s) "
                "ON CONFLICT (subject_id) DO NOTHING", (subject, *wrapped))
            cursor.execute("SELECT master_key_id, wrapped FROM data_keys WHERE subject_id = %s",
                           (subject,))
            row = cursor.fetchone()
        return row["master_key_id"], bytes(row["wrapped"])

    def rewrap(self, current_id: str, rewrap: Callable[[UUID, Wrapped], Wrapped],
               batch: int) -> int:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "SELECT subject_id, master_key_id, wrapped FROM data_keys "
                "WHERE master_key_id <> %s LIMIT %s FOR UPDATE SKIP LOCKED", (current_id, batch))
            rows = cursor.fetchall()
            for row in rows:
                subject = row["subject_id"]
                key_id, wrapped = rewrap(subject, (row["master_key_id"], bytes(row["wrapped"])))
                cursor.execute("UPDATE data_keys SET master_key_id = %s, wrapped = %s "
                               "WHERE subject_id = %s", (key_id, wrapped, subject))
        return len(rows)

    def count_by_master_key(self) -> dict[str, int]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT master_key_id, count(*) AS n FROM data_keys GROUP BY 1")
            return {row["master_key_id"]: row["n"] for row in cursor.fetchall()}


class MemoryKeyStore:
    """Wrapped keys in a dict: for an application on in-memory persistence."""

    def __init__(self) -> None:
        self.keys: dict[UUID, Wrapped] = {}
        self._lock = threading.Lock()

    def add_or_get(self, subject: UUID, wrapped: Wrapped) -> Wrapped:
        with self._lock:
            return self.keys.setdefault(subject, wrapped)

    def rewrap(self, current_id: str, rewrap: Callable[[UUID, Wrapped], Wrapped],
               batch: int) -> int:
        with self._lock:
            stale = [s for s, w in self.keys.items() if w[0] != current_id][:batch]
            for subject in stale:
                self.keys[subject] = rewrap(subject, self.keys[subject])
        return len(stale)

    def count_by_master_key(self) -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = {}
            for key_id, _ in self.keys.values():
                counts[key_id] = counts.get(key_id, 0) + 1
            return counts


def _context(subject: UUID, purpose: str) -> bytes:
    return subject.bytes + purpose.encode()
