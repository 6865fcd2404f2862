"""Is this session still alive? Asked on every request, answered for many at once.

Requests that arrive together share one query on an async connection, so checking a token
costs no thread hop and no aggregate replay. A query starts only after every request it
answers was queued, so a logout or device lock committed before a request is always seen,
by every API process.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

import psycopg
from eventsourcing.utils import get_topic
from psycopg.sql import Composed
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from gopay.aggregates.session import Session
from gopay.datastore import RECONNECT_TIMEOUT

REVOKED_TOPIC = get_topic(Session.Revoked)


class SessionGate:
    """Batches session checks: one query for every request waiting when it starts.

    `revoked_among` is the event recorder's statement naming which of some aggregates have
    an event of a topic: the gate asks it for `Session.Revoked`.
    """

    def __init__(self, database_url: str, revoked_among: Composed, pool_size: int = 2,
                 timeout: float = 5.0) -> None:
        self._query = revoked_among
        # While the store is down, requests hear it within `timeout` (as commands do), and
        # lost connections are made again on demand (see gopay/datastore.py).
        self._pool = AsyncConnectionPool(database_url, min_size=1, max_size=pool_size,
                                         open=False, kwargs={"autocommit": True},
                                         timeout=timeout, reconnect_timeout=RECONNECT_TIMEOUT)
        self._waiting: dict[UUID, list[asyncio.Future[bool]]] = {}
        self._checking: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self._pool.open()

    async def close(self) -> None:
        await self._pool.close()

    async def is_alive(self, session_id: UUID) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(session_id, []).append(future)
        if self._checking is None or self._checking.done():
            self._checking = asyncio.create_task(self._check_waiting())
        return await future

    async def _check_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, {}
            try:
                revoked = await self._revoked(list(batch))
            except Exception as error:  # noqa: BLE001 - the store is down: these requests hear it
                for futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(error)
                continue
            for session_id, futures in batch.items():
                for future in futures:
                    if not future.done():
                        future.set_result(session_id not in revoked)

    async def _revoked(self, session_ids: list[UUID]) -> set[UUID]:
        """Which of these sessions are revoked. A connection that broke (its server died, a
        failover) is not the last word: the broken ones are replaced and the query runs once
        more, on the new primary if there is one."""
        try:
            return await self._ask(session_ids)
        except PoolTimeout:  # no connection could be made at all: no point asking again
            raise
        except psycopg.OperationalError:
            await self._pool.check()
            return await self._ask(session_ids)

    async def _ask(self, session_ids: list[UUID]) -> set[UUID]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(self._query, (session_ids, REVOKED_TOPIC))
            return {row[0] for row in await cursor.fetchall()}
