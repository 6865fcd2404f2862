"""Merchants' API keys: made and listed by the merchant signed in, revoked at once."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from fastapi import APIRouter

from gopay.aggregates.api_key import ApiKey, secret_digest
from gopay.api.deps import IdempotencyKey, SystemDep, fingerprint
from gopay.api.merchant_auth import Merchant
from gopay.api.merchant_schemas import ApiKeyCreate, ApiKeyIssued, ApiKeyPublic
from gopay.api.problems import Problem
from gopay.api.schemas import Page
from gopay.commands.api_keys import IssueApiKey, RevokeApiKey
from gopay.security.api_keys import PREFIX, new_secret

router = APIRouter(prefix="/v1/merchant/api-keys", tags=["merchants"])


def api_key_public(row: dict[str, Any]) -> ApiKeyPublic:
    return ApiKeyPublic(id=row["id"], name=row["name"], prefix=row["prefix"], last4=row["last4"],
                        created_at=row["created_at"], revoked_at=row["revoked_at"])


@router.post("", status_code=201, response_model=ApiKeyIssued)
def create_api_key(body: ApiKeyCreate, caller: Merchant, system: SystemDep,
                   idempotency_key: IdempotencyKey = None) -> ApiKeyIssued:
    """A secret key for your server (`Authorization: Bearer sk_live_...`): it may create QR
    codes, read your payments and refund them, and nothing else. The secret is shown once,
    here; GoPay keeps only its SHA-256."""
    key_id = ApiKey.id_for(caller.user_id, idempotency_key) if idempotency_key else uuid4()
    secret = new_secret(key_id)
    key = system.commands.run(IssueApiKey(
        merchant_id=caller.user_id, key_id=key_id, name=body.name, prefix=PREFIX,
        last4=secret[-4:], digest=secret_digest(secret), idempotency_key=idempotency_key,
        fingerprint=fingerprint(body))).value
    # A repeated request finds the key the first one made; its secret was shown then.
    shown = secret if key.admits(secret) else None
    return ApiKeyIssued(id=key.id, name=key.name, prefix=key.prefix, last4=key.last4,
                        created_at=key.created_on, secret=shown)


@router.get("", response_model=Page[ApiKeyPublic])
def list_api_keys(caller: Merchant, system: SystemDep) -> Page[ApiKeyPublic]:
    """Your keys, revoked ones too, each shown by its prefix and last four characters."""
    system.catch_up_reads()
    rows = system.read_side.merchant.api_keys(caller.user_id)
    return Page[ApiKeyPublic](data=[api_key_public(row) for row in rows], next_cursor=None)


@router.delete("/{key_id}", response_model=ApiKeyPublic)
def revoke_api_key(key_id: str, caller: Merchant, system: SystemDep) -> ApiKeyPublic:
    """Revoke a key: from this answer on, no GoPay server accepts it."""
    try:
        key = system.commands.run(RevokeApiKey(merchant_id=caller.user_id,
                                               key_id=UUID(key_id))).value
    except ValueError:
        raise Problem(404, "API key not found") from None
    return ApiKeyPublic(id=key.id, name=key.name, prefix=key.prefix, last4=key.last4,
                        created_at=key.created_on, revoked_at=key.modified_on)
