"""Retry policies for work that is retried later, durably: tenacity's strategies, asked for a delay.

A retry that must survive a crash cannot live in a loop in memory: the next attempt's time is
written down with the work itself. What that time is comes from tenacity's wait and stop
strategies, so policies read as tenacity's do (immediate, fixed, exponential with jitter, a
maximum number of attempts or a deadline).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tenacity import RetryCallState, stop_after_attempt, wait_exponential_jitter
from tenacity.stop import stop_base
from tenacity.wait import wait_base


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again after a failed attempt, and when to give up."""

    wait: wait_base
    stop: stop_base

    def next_delay(self, attempts: int, seconds_since_first: float = 0.0) -> float | None:
        """Seconds until the next attempt after `attempts` failed ones; None to give up."""
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]  # tenacity asks for a Retrying object it does not read here
        state.attempt_number = attempts
        state.start_time = time.monotonic() - seconds_since_first
        state.outcome_timestamp = time.monotonic()
        if self.stop(state):
            return None
        return float(self.wait(state))


# E-mail: soon at first, then less and less often, for about a day.
EMAIL_DELIVERY = RetryPolicy(wait=wait_exponential_jitter(multiplier=5, max=3600),
                             stop=stop_after_attempt(30))
