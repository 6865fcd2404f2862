"""The key ring: master keys that wrap data keys, never data itself (envelope encryption).

`GOPAY_ENCRYPTION_KEYS` is `id1:base64key,id2:base64key`; the first key wraps new data keys,
the others only unwrap what they wrapped before. Rotating means putting a new key first and
re-wrapping every data key under it (`gopay keys rotate`), after which the old keys can go.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class KeyRingError(ValueError):
    """The key ring is malformed, or lacks the key something was wrapped with."""


class KeyRing:
    """Named AES-256 master keys; the first one is current."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        if not keys:
            raise KeyRingError("the key ring is empty")
        for key_id, key in keys.items():
            if len(key) != 32:
                raise KeyRingError(f"key {key_id!r} is not 32 bytes (AES-256)")
            if not key_id or not key_id.isascii() or ":" in key_id or "," in key_id:
                raise KeyRingError(f"key id {key_id!r} is not a plain word")
        self._keys = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current_id = next(iter(keys))

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """A ring from `id1:base64key,id2:base64key` (whitespace around entries is ignored)."""
        keys: dict[str, bytes] = {}
        for entry in filter(None, (part.strip() for part in text.split(","))):
            key_id, _, encoded = entry.partition(":")
            try:
                keys[key_id.strip()] = base64.b64decode(encoded.strip(), validate=True)
            except binascii.Error:
                raise KeyRingError(f"key {key_id!r} is not base64") from None
        return cls(keys)

    @staticmethod
    def new_entry(key_id: str | None = None) -> str:
        """A fresh `id:base64key` entry to put at the front of the ring."""
        key_id = key_id or f"k{secrets.token_hex(4)}"
        return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]:
        """`data_key` encrypted under the current key, bound to `context`; and that key's id."""
        nonce = os.urandom(NONCE_BYTES)
        return self.current_id, nonce + self._keys[self.current_id].encrypt(nonce, data_key, context)

    def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes:
        key = self._keys.get(key_id)
        if key is None:
            raise KeyRingError(f"master key {key_id!r} is not in the key ring")
        return key.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context)
