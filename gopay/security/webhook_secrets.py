"""Merchant webhook signing secrets: `whsec_...`, one per endpoint, derived rather than stored.

GoPay must sign every delivery with the endpoint's secret, so it has to be able to produce
it again; deriving it (HMAC-SHA256 of the endpoint's id under `GOPAY_WEBHOOK_SIGNING_KEY`)
means no copy of any secret sits in the database, and an endpoint made again with the same
Idempotency-Key answers the same secret.
"""

from __future__ import annotations

import hashlib
import hmac
from uuid import UUID


def endpoint_secret(key: str, endpoint_id: UUID) -> str:
    if not key:
        raise ValueError("the webhook signing key is empty")
    digest = hmac.new(key.encode(), f"webhook-endpoint/{endpoint_id}".encode(), hashlib.sha256)
    return f"whsec_{digest.hexdigest()}"
