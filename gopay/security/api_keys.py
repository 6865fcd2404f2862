"""Merchant API key secrets: `sk_live_<key id><256 random bits>`, made here and never stored.

The key's id is part of the secret, so checking a key is one lookup by id and a comparison
of hashes (`ApiKey.admits`): no index of hashes is needed, and the store holds only the
SHA-256 of each secret.
"""

from __future__ import annotations

import re
import secrets
from uuid import UUID

PREFIX = "sk_live_"
SHAPE = re.compile(r"sk_live_(?P<key_id>[0-9a-f]{32})[A-Za-z0-9_-]{43}")


def new_secret(key_id: UUID) -> str:
    return f"{PREFIX}{key_id.hex}{secrets.token_urlsafe(32)}"


def key_id_of(secret: str) -> UUID | None:
    """The id of the key a secret claims to be; None when it is not shaped like one."""
    match = SHAPE.fullmatch(secret)
    return UUID(hex=match["key_id"]) if match else None


def looks_like_api_key(token: str) -> bool:
    """A bearer token meant as a merchant API key (any `sk_` secret), not an access token."""
    return token.startswith("sk_")
