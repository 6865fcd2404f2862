"""Merchants' webhook endpoints and the log of what was delivered to them."""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from gopay.api.deps import IdCursor, IdempotencyKey, SystemDep, fingerprint, id_cursor
from gopay.api.merchant_auth import Merchant, MerchantCaller
from gopay.api.merchant_schemas import (
    Removed,
    WebhookAttemptPublic,
    WebhookDeliveryPublic,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointPublic,
)
from gopay.api.pagination import page_of
from gopay.api.problems import Problem
from gopay.api.schemas import Page
from gopay.commands.webhook_endpoints import AddWebhookEndpoint, RemoveWebhookEndpoint
from gopay.security.webhook_secrets import endpoint_secret
from gopay.security.webhook_urls import refusal
from gopay.system import System

router = APIRouter(tags=["merchants"])

ENDPOINTS = "/v1/merchant/webhook-endpoints"


def endpoint_public(row: dict[str, Any]) -> WebhookEndpointPublic:
    return WebhookEndpointPublic(id=row["id"], url=row["url"], events=list(row["events"]),
                                 created_at=row["created_at"])


def delivery_public(row: dict[str, Any]) -> WebhookDeliveryPublic:
    attempts = row["attempt_log"]
    if isinstance(attempts, str):
        attempts = json.loads(attempts)
    return WebhookDeliveryPublic(
        id=row["id"], endpoint_id=row["endpoint_id"], event_id=row["event_id"],
        event_type=row["event_type"], status=row["status"],
        attempts=[WebhookAttemptPublic(**{k: a[k] for k in WebhookAttemptPublic.model_fields})
                  for a in attempts],
        next_attempt_at=row["next_attempt_at"] if row["status"] == "pending" else None,
        created_at=row["created_at"], payload=json.loads(row["body"]))


@router.post(ENDPOINTS, status_code=201, response_model=WebhookEndpointCreated)
def add_endpoint(body: WebhookEndpointCreate, caller: Merchant, system: SystemDep,
                 idempotency_key: IdempotencyKey = None) -> WebhookEndpointCreated:
    """Have GoPay POST `events` to `url` (a public https address), each signed with the
    `secret` answered here: `GoPay-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`.
    A delivery that gets no 2xx is retried with exponential backoff for a day."""
    problem = refusal(body.url, allow_private=system.settings.webhook_allow_private)
    if problem is not None:
        raise Problem(422, problem, "validation_error")
    endpoint = system.commands.run(AddWebhookEndpoint(
        merchant_id=caller.user_id, url=body.url, events=tuple(body.events),
        idempotency_key=idempotency_key, fingerprint=fingerprint(body))).value
    return WebhookEndpointCreated(id=endpoint.id, url=endpoint.url, events=list(endpoint.events),
                                  created_at=endpoint.created_on,
                                  secret=endpoint_secret(system.settings.webhook_key, endpoint.id))


@router.get(ENDPOINTS, response_model=Page[WebhookEndpointPublic])
def list_endpoints(caller: Merchant, system: SystemDep) -> Page[WebhookEndpointPublic]:
    system.catch_up_reads()
    rows = system.read_side.webhooks.endpoints(caller.user_id)
    return Page[WebhookEndpointPublic](data=[endpoint_public(row) for row in rows], next_cursor=None)


@router.delete(ENDPOINTS + "/{endpoint_id}", response_model=Removed)
def remove_endpoint(endpoint_id: str, caller: Merchant, system: SystemDep) -> Removed:
    """Send nothing more there; deliveries still waiting for a retry are cancelled."""
    endpoint = system.commands.run(RemoveWebhookEndpoint(
        merchant_id=caller.user_id, endpoint_id=_endpoint_id(endpoint_id))).value
    return Removed(id=endpoint.id)


@router.get("/v1/merchant/webhook-deliveries", response_model=Page[WebhookDeliveryPublic])
def list_deliveries(caller: Merchant, system: SystemDep, endpoint_id: Annotated[str, Query()],
                    limit: Annotated[int, Query(ge=1, le=200)] = 50,
                    cursor: IdCursor = None) -> Page[WebhookDeliveryPublic]:
    """What was sent to one of your endpoints, newest first, with every attempt."""
    system.catch_up_reads()
    own = _own_endpoint(system, caller, endpoint_id)
    after = id_cursor(cursor)
    rows = system.read_side.webhooks.deliveries(own, limit=limit + 1,
                                                after=UUID(after) if after else None)
    return page_of(Page[WebhookDeliveryPublic], rows, limit, delivery_public, lambda row: row["id"])


def _own_endpoint(system: System, caller: MerchantCaller, endpoint_id: str) -> UUID:
    try:
        row = system.read_side.webhooks.endpoint(UUID(endpoint_id))
    except ValueError:
        row = None
    if row is None or row["owner_id"] != caller.user_id:
        raise Problem(404, "webhook endpoint not found")
    return UUID(str(row["id"]))


def _endpoint_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise Problem(404, "webhook endpoint not found") from None
