"""The PSP's signed callbacks: kept as tasks at once, applied once each."""

from __future__ import annotations

import json
import logging
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from prometheus_client import Counter

from gopay.aggregates.psp_task import PspTask
from gopay.api.deps import SystemDep
from gopay.api.problems import Problem
from gopay.processes.psp import KNOWN_WEBHOOKS
from gopay.psp.webhooks import HEADER, SignatureError, verify
from gopay.system import System

log = logging.getLogger(__name__)

router = APIRouter(tags=["PSP"])

# Signed callbacks taken, by type (those GoPay does not act on as "other"): what the PSP told.
WEBHOOKS = Counter("gopay_psp_webhooks_total", "Signed PSP webhooks taken, by type", ["type"])


@router.post("/v1/psp/webhooks", response_model=dict[str, bool],
             openapi_extra={"parameters": [{
                 "name": HEADER, "in": "header", "required": True, "schema": {"type": "string"},
                 "description": 't=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">'}]})
async def psp_webhook(request: Request, system: SystemDep) -> dict[str, bool]:
    """A callback from the PSP, checked against its signature over the raw body.

    A bad, stale or missing signature is a 400 and changes nothing. A known event is kept
    as a task and applied (a duplicate finds the first delivery's task); an event of a type
    GoPay does not act on is acknowledged and ignored.
    """
    body = await request.body()
    try:
        verify(system.settings.psp_signing_secret, request.headers.get(HEADER), body)
    except SignatureError as error:
        raise Problem(400, str(error), "bad_signature") from None
    event = event_of(body)
    if event["type"] not in KNOWN_WEBHOOKS:
        WEBHOOKS.labels("other").inc()
        return {"received": True}
    await take(system, event)
    return {"received": True}


async def take(system: System, event: dict[str, Any]) -> None:
    """Keep a known event as a task and apply it. Awaited: news of an order this process has
    just settled (the usual news) takes one batch and no thread."""
    task = await system.psp_process.keep_webhook(
        event["id"], event["type"], _uuid(event.get("merchant_reference")), event)
    if task is not None and not task.done:
        await run_in_threadpool(_apply, system, task, event["id"])
    WEBHOOKS.labels(event["type"]).inc()


def event_of(body: bytes) -> dict[str, Any]:
    """The event a signed body holds, its data flattened; a 400 if it is not one."""
    try:
        event = json.loads(body)
    except ValueError:
        raise Problem(400, "the body is not JSON", "bad_request") from None
    if not (isinstance(event, dict) and isinstance(event.get("id"), str)
            and isinstance(event.get("type"), str) and isinstance(event.get("data"), dict)):
        raise Problem(400, "a webhook is {id, type, created_at, data}", "bad_request")
    return {**event["data"], "created_at": event.get("created_at"), "type": event["type"],
            "id": event["id"]}


def _apply(system: System, task: PspTask, event_id: str) -> None:
    """At once, for a quick settlement; if this fails the task is retried by the job."""
    try:
        system.psp_process.apply(task)
    except Exception:
        log.exception("applying PSP webhook %s failed; it will be retried", event_id)


def _uuid(text: object) -> UUID | None:
    try:
        return UUID(str(text))
    except ValueError:
        return None
