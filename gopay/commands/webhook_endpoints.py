"""Merchant webhook endpoints: added with the events they want, removed when no longer wanted.

What reaches them is decided by the webhook process (`gopay.processes.merchant_webhooks`),
which follows the log; this module only keeps the merchant's subscriptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

from gopay.aggregates.errors import NotFound
from gopay.aggregates.webhook_endpoint import WebhookEndpoint, subscription
from gopay.commands.bus import Command, Context, in_batch
from gopay.commands.idempotency import repeat_of
from gopay.commands.merchants import merchant
from gopay.group_commit import UnitOfWork


@dataclass(frozen=True, kw_only=True)
class AddWebhookEndpoint(Command[WebhookEndpoint]):
    """Send the merchant's `events` to `url` (checked by the API: a public http(s) address)."""

    merchant_id: UUID
    url: str
    events: tuple[str, ...]
    idempotency_key: str | None = None
    fingerprint: str = ""


@dataclass(frozen=True, kw_only=True)
class RemoveWebhookEndpoint(Command[WebhookEndpoint]):
    merchant_id: UUID
    endpoint_id: UUID


@in_batch(AddWebhookEndpoint, probes=lambda command: (
        (WebhookEndpoint.id_for(command.merchant_id, command.idempotency_key),)
        if command.idempotency_key else ()))
def add_webhook_endpoint(command: AddWebhookEndpoint, unit: UnitOfWork,
                         context: Context) -> WebhookEndpoint:
    endpoint_id = (WebhookEndpoint.id_for(command.merchant_id, command.idempotency_key)
                   if command.idempotency_key else uuid4())
    existing = repeat_of(unit, endpoint_id, WebhookEndpoint, command.idempotency_key,
                         lambda endpoint: endpoint.request_fingerprint == command.fingerprint)
    if existing is not None:
        return existing
    events = subscription(command.events)
    owner = merchant(unit, command.merchant_id)
    assert owner.wallet_id is not None
    endpoint = WebhookEndpoint(id=endpoint_id, owner_id=owner.id, wallet_id=owner.wallet_id,
                               url=command.url, events=events,
                               request_fingerprint=command.fingerprint)
    unit.add(endpoint)
    return endpoint


@in_batch(RemoveWebhookEndpoint)
def remove_webhook_endpoint(command: RemoveWebhookEndpoint, unit: UnitOfWork,
                            context: Context) -> WebhookEndpoint:
    endpoint = unit.find(command.endpoint_id, WebhookEndpoint)
    if endpoint is None or endpoint.owner_id != command.merchant_id:
        raise NotFound("webhook endpoint not found")
    endpoint.remove(by=command.merchant_id)
    return endpoint
