"""Sending merchants' webhooks: each delivery POSTed, signed, until a 2xx or its retries run out.

The deliveries come from the log (`gopay.projections.webhook_deliveries`). A scheduled job
claims the due ones (a claim lasts longer than an attempt can, so two processes never send
one delivery at once, and a delivery whose sender died is taken up again when its claim
runs out) and POSTs each body with `GoPay-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
"t.body">` under the endpoint's secret. A 2xx ends it; anything else is tried again at the
time the retry policy gives, written down with the attempt so it survives any crash, until
the policy gives up and the delivery is marked failed. Every attempt of a delivery carries
the same event id, so a receiver that saw it already can tell.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter
from tenacity import stop_after_delay, wait_exponential_jitter

from gopay.clock import Clock, utc_now
from gopay.projections.webhook_deliveries import WebhookDeliveryView
from gopay.psp.webhooks import sign
from gopay.retry import RetryPolicy
from gopay.security.webhook_secrets import endpoint_secret
from gopay.security.webhook_urls import refusal

log = logging.getLogger(__name__)

HEADER = "GoPay-Signature"
ATTEMPTS = Counter("gopay_webhook_attempts_total", "Merchant webhook delivery attempts, by outcome",
                   ["outcome"])


def retry_policy(first: float, longest: float, for_seconds: float) -> RetryPolicy:
    """Exponential backoff from about `first` seconds up to `longest`, for `for_seconds`."""
    return RetryPolicy(wait=wait_exponential_jitter(multiplier=first, max=longest, jitter=first / 2),
                       stop=stop_after_delay(for_seconds))


class WebhookDeliverer:
    """Sends due deliveries; see the module docstring."""

    def __init__(self, view: WebhookDeliveryView, key: str, policy: RetryPolicy, *,
                 timeout: float, allow_private: bool, clock: Clock = utc_now,
                 senders: int = 8) -> None:
        self.view = view
        self.key = key
        self.policy = policy
        self.allow_private = allow_private
        self.clock = clock
        self.timeout = timeout
        # A claim outlives any attempt: its timeout, and time to write the outcome down.
        self.claim = timedelta(seconds=2 * timeout + 30)
        self.http = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False,
                                 headers={"User-Agent": "GoPay-Webhooks/1",
                                          "Content-Type": "application/json"})
        self.senders = ThreadPoolExecutor(max_workers=senders, thread_name_prefix="webhooks")

    def run_due(self, limit: int = 64) -> int:
        """Send every delivery due now (up to `limit`), side by side; how many were tried."""
        now = self.clock()
        due = self.view.claim_due(now, now + self.claim, limit)
        for outcome in self.senders.map(self._attempt, due):
            if outcome is not None:
                log.error("webhook delivery failed unexpectedly", exc_info=outcome)
        return len(due)

    def close(self) -> None:
        self.senders.shutdown(wait=True)
        self.http.close()

    def _attempt(self, delivery: dict[str, Any]) -> BaseException | None:
        try:
            self._send(delivery)
        except Exception as error:  # noqa: BLE001 - one delivery's bug must not stop the others
            return error
        return None

    def _send(self, delivery: dict[str, Any]) -> None:
        body = delivery["body"].encode()
        status_code: int | None = None
        error: str | None = refusal(delivery["url"], allow_private=self.allow_private)
        started = time.monotonic()
        at = self.clock()
        if error is None:
            secret = endpoint_secret(self.key, delivery["endpoint_id"])
            try:
                response = self.http.post(delivery["url"], content=body,
                                          headers={HEADER: sign(secret, body)})
                status_code = response.status_code
                if not response.is_success:
                    error = f"answered {status_code}"
            except httpx.HTTPError as failure:  # refused, timed out, cut off, not HTTP
                error = f"{type(failure).__name__}: {failure}"[:500]
        duration_ms = round((time.monotonic() - started) * 1000)
        number = delivery["attempts"] + 1
        ATTEMPTS.labels("delivered" if error is None else "failed").inc()
        status, next_at = "succeeded", at
        if error is not None:
            delay = self.policy.next_delay(
                number, (at - delivery["created_at"]).total_seconds())
            status, next_at = ("failed", at) if delay is None else ("pending", at + timedelta(seconds=delay))
            if delay is None:
                log.warning("webhook %s to %s failed for good after %d attempts: %s",
                            delivery["event_id"], urlsplit(delivery["url"]).hostname, number, error)
        self.view.record_attempt(delivery["id"], number=number, at=at, status_code=status_code,
                                 error=error, duration_ms=duration_ms, status=status,
                                 next_attempt_at=next_at)
