"""A person's notices: the in-app inbox, read marks, and the live stream (server-sent events)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from gopay.api.deps import Caller, SystemDep
from gopay.api.problems import Problem
from gopay.api.schemas import UtcDatetime
from gopay.projections.notifications import notice_public

router = APIRouter(tags=["notifications"])

# A stream polls its person's notices this often, sends at most this many at a time, says it
# is alive this often, and ends after this long (the client reconnects with Last-Event-ID):
# each stream costs one small indexed query a second and never holds a connection for long.
POLL_SECONDS = 1.0
BATCH = 100
KEEP_ALIVE_SECONDS = 15.0
STREAM_SECONDS = 300.0
MAX_STREAMS = 200  # per API process
_open_streams = 0

SeqCursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$",
                                        description="The `next_cursor` of the page before")]


class NotificationPublic(BaseModel):
    id: UUID
    type: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: UtcDatetime
    read_at: UtcDatetime | None


class NotificationPage(BaseModel):
    data: list[NotificationPublic]
    next_cursor: str | None
    unread_count: int


class UnreadCount(BaseModel):
    unread_count: int


@router.get("/v1/notifications", response_model=NotificationPage)
def notifications(caller: Caller, system: SystemDep, unread: bool = False,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50,
                  cursor: SeqCursor = None) -> NotificationPage:
    """Your notices, newest first (`unread=true`: only those not marked read)."""
    system.catch_up_reads()
    view = system.read_side.notifications
    rows = view.inbox(caller.user_id, unread=unread, limit=limit + 1,
                      before=int(cursor) if cursor else None)
    return NotificationPage(
        data=[NotificationPublic.model_validate(notice_public(row)) for row in rows[:limit]],
        next_cursor=str(rows[limit - 1]["seq"]) if len(rows) > limit else None,
        unread_count=view.unread_count(caller.user_id))


@router.get("/v1/notifications/unread-count", response_model=UnreadCount)
def unread_count(caller: Caller, system: SystemDep) -> UnreadCount:
    system.catch_up_reads()
    return UnreadCount(unread_count=system.read_side.notifications.unread_count(caller.user_id))


@router.get("/v1/notifications/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def stream(request: Request, caller: Caller, system: SystemDep,
                 last_event_id: Annotated[str | None, Header(pattern=r"^[0-9]{1,18}$")] = None
                 ) -> StreamingResponse:
    """Your notices as they come, as server-sent events (`id:` is the notice's place in your
    stream: reconnect with `Last-Event-ID` and nothing is missed). Without it, only notices
    from now on. A stream ends after five minutes; reconnect with the last id seen."""
    global _open_streams  # noqa: PLW0603 - one counter per process, changed on the event loop only
    if _open_streams >= MAX_STREAMS:
        raise Problem(429, "too many live streams on this server; try again shortly",
                      "rate_limited", headers={"Retry-After": "5"})
    view = system.read_side.notifications
    after = int(last_event_id) if last_event_id else await anyio.to_thread.run_sync(
        view.last_seq, caller.user_id)
    _open_streams += 1

    async def events() -> AsyncIterator[str]:
        global _open_streams  # noqa: PLW0603
        seen = after
        started = last_sent = time.monotonic()
        try:
            yield f"retry: 1000\n: from {seen}\n\n"
            while time.monotonic() - started < STREAM_SECONDS and not await request.is_disconnected():
                rows = await anyio.to_thread.run_sync(view.since, caller.user_id, seen, BATCH)
                for row in rows:
                    seen = row["seq"]
                    body = json.dumps(notice_public(row), default=_json_value)
                    yield f"id: {seen}\nevent: notification\ndata: {body}\n\n"
                    last_sent = time.monotonic()
                if len(rows) == BATCH:
                    continue
                if time.monotonic() - last_sent >= KEEP_ALIVE_SECONDS:
                    yield ": keep-alive\n\n"
                    last_sent = time.monotonic()
                await asyncio.sleep(POLL_SECONDS)
        finally:
            _open_streams -= 1

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"X-Accel-Buffering": "no"})


@router.get("/v1/notifications/{notification_id}", response_model=NotificationPublic)
def notification(notification_id: UUID, caller: Caller, system: SystemDep) -> NotificationPublic:
    system.catch_up_reads()
    row = system.read_side.notifications.notice(caller.user_id, notification_id)
    if row is None:
        raise Problem(404, "notification not found")
    return NotificationPublic.model_validate(notice_public(row))


@router.post("/v1/notifications/{notification_id}/read", response_model=NotificationPublic)
def mark_read(notification_id: UUID, caller: Caller, system: SystemDep) -> NotificationPublic:
    """Mark one of your notices read (again: no change)."""
    system.catch_up_reads()
    row = system.read_side.notifications.mark_read(caller.user_id, notification_id)
    if row is None:
        raise Problem(404, "notification not found")
    return NotificationPublic.model_validate(notice_public(row))


def _json_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)
