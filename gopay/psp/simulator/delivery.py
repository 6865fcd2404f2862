"""Webhook delivery: each event POSTed to GoPay, signed at each attempt, retried with backoff until a 2xx.

Deliveries live in the simulator's SQLite file, so a restart resumes them. Delivery is at
least once, as a real PSP's is: a delivery whose 2xx arrived just before a crash goes out
again after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import httpx

from gopay.psp.simulator.faults import Dice
from gopay.psp.simulator.provider import timestamp
from gopay.psp.simulator.store import Delivery, Store
from gopay.psp.webhooks import HEADER, sign

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: `first` seconds, doubling up to `longest`, for `give_up_after`."""

    first: float = 1.0
    longest: float = 60.0
    give_up_after: float = 24 * 3600.0
    # How long one attempt may take before it counts as failed.
    attempt_timeout: float = 10.0


class WebhookSender:
    """Sends due deliveries from one asyncio task, many at a time, with one HTTP client."""

    def __init__(self, store: Store, url: str, secret: str, dice: Dice,
                 policy: RetryPolicy = RetryPolicy(), concurrency: int = 32) -> None:
        self.store = store
        self.url = url
        self.secret = secret
        self.dice = dice
        self.policy = policy
        self.concurrency = concurrency
        self.in_flight: set[int] = set()
        self.attempts: set[asyncio.Task[None]] = set()  # the loop keeps only weak references
        self.due = asyncio.Event()

    def wake(self) -> None:
        """Something may be due now (a new event): look at once instead of at the next tick."""
        self.due.set()

    async def run(self) -> None:
        """Deliver until cancelled."""
        async with httpx.AsyncClient(timeout=self.policy.attempt_timeout) as client:
            try:
                while True:
                    self.due.clear()
                    room = self.concurrency - len(self.in_flight)
                    if room > 0:
                        for delivery in self.store.due_deliveries(time.time(), room, self.in_flight):
                            self.in_flight.add(delivery.id)
                            attempt = asyncio.create_task(self._deliver(client, delivery))
                            self.attempts.add(attempt)
                            attempt.add_done_callback(self.attempts.discard)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.due.wait(), timeout=0.1)
            finally:
                # Stopping: attempts under way are left as they are in the books, due again at the next start.
                for attempt in list(self.attempts):
                    attempt.cancel()
                await asyncio.gather(*self.attempts, return_exceptions=True)

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        attempts = delivery.attempts + 1
        body = delivery.body.encode()
        try:
            try:
                response = await client.post(self.url, content=body, headers={
                    "Content-Type": "application/json", HEADER: sign(self.secret, body)})
                error = None if response.is_success else f"HTTP {response.status_code}"
            except httpx.HTTPError as failure:
                error = f"{type(failure).__name__}: {failure}"[:300]
            now = time.time()
            if error is None:
                self.store.delivered(delivery.id, attempts, timestamp(now))
                return
            retry_at = None
            if now - delivery.created < self.policy.give_up_after:
                backoff = min(self.policy.longest, self.policy.first * 2 ** (attempts - 1))
                retry_at = now + backoff * self.dice.jitter()
            self.store.failed(delivery.id, attempts, error, retry_at=retry_at, at=timestamp(now))
            if retry_at is None:
                log.warning("gave up webhook event %s after %d attempts: %s",
                            delivery.event_id, attempts, error)
        finally:
            self.in_flight.discard(delivery.id)
            self.due.set()
