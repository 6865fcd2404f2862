"""Merchant API keys: issued to a merchant's server, shown once, revoked at once.

The API makes the secret (`gopay.security.api_keys`) and hands this module only its hash
and the parts a listing shows; no event ever holds the secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from gopay.aggregates.api_key import ApiKey
from gopay.aggregates.errors import NotFound
from gopay.commands.bus import Command, Context, in_batch
from gopay.commands.idempotency import repeat_of
from gopay.commands.merchants import merchant
from gopay.group_commit import UnitOfWork


@dataclass(frozen=True, kw_only=True)
class IssueApiKey(Command[ApiKey]):
    """Keep a new key of the merchant's under `key_id` (derived from an Idempotency-Key, or new)."""

    merchant_id: UUID
    key_id: UUID
    name: str
    prefix: str
    last4: str
    digest: str = field(repr=False)
    idempotency_key: str | None = None
    fingerprint: str = ""


@dataclass(frozen=True, kw_only=True)
class RevokeApiKey(Command[ApiKey]):
    merchant_id: UUID
    key_id: UUID


@in_batch(IssueApiKey, probes=lambda command: (command.key_id,))
def issue_api_key(command: IssueApiKey, unit: UnitOfWork, context: Context) -> ApiKey:
    existing = repeat_of(unit, command.key_id, ApiKey, command.idempotency_key,
                         lambda key: key.request_fingerprint == command.fingerprint)
    if existing is not None:
        return existing
    owner = merchant(unit, command.merchant_id)
    assert owner.wallet_id is not None
    key = ApiKey(id=command.key_id, owner_id=owner.id, wallet_id=owner.wallet_id,
                 name=command.name, prefix=command.prefix, last4=command.last4,
                 digest=command.digest, request_fingerprint=command.fingerprint)
    unit.add(key)
    return key


@in_batch(RevokeApiKey)
def revoke_api_key(command: RevokeApiKey, unit: UnitOfWork, context: Context) -> ApiKey:
    key = unit.find(command.key_id, ApiKey)
    if key is None or key.owner_id != command.merchant_id:
        raise NotFound("API key not found")
    key.revoke(by=command.merchant_id)
    return key
