"""The faults the simulator injects, each a probability, and the seeded dice that decide them.

Faults of an answer (`rate_limited`, `timeout`, `error_5xx`, `drop_response`) apply to every
`/v1` request, status queries included; at most one hits a request, tried in that order. Faults of a
webhook (`drop_webhook`, `duplicate_webhook`, `delay_webhook`) are decided once, when the
event happens, and kept with its deliveries, so a restart does not change them.

Whether the work is done:
- `rate_limited`: never; the PSP answers 429 `rate_limited` with `Retry-After:
  rate_limit_retry_after` seconds, as a real PSP does when a client sends too much too fast.
- `drop_response`: always; the PSP commits, then closes the connection without a word.
- `timeout`: the request hangs `timeout_seconds`, then does the work with probability
  `timeout_work_done` (0.5 by default: either may happen, as with a real PSP) and answers a
  client that has long gone.
- `error_5xx`: answers 500, 502 or 503 at random; the work was done first with probability
  `error_5xx_work_done` (0.5 by default).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Probability = Annotated[float, Field(ge=0, le=1, strict=True, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, le=3600, strict=True, allow_inf_nan=False)]


class Faults(BaseModel):
    """The fault settings, as `POST /sim/faults` takes them and `GET /sim/faults` shows them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drop_response: Probability = 0.0
    duplicate_webhook: Probability = 0.0
    delay_webhook: Probability = 0.0
    drop_webhook: Probability = 0.0
    timeout: Probability = 0.0
    error_5xx: Probability = 0.0
    rate_limited: Probability = 0.0
    timeout_work_done: Probability = 0.5
    error_5xx_work_done: Probability = 0.5
    # How long a timed-out request hangs: longer than the client waits.
    timeout_seconds: Seconds = 30.0
    # A delayed webhook goes out between half of this and this many seconds late, so that
    # events after it overtake it.
    webhook_delay_seconds: Seconds = 5.0
    # The Retry-After of a rate-limited answer, in whole seconds.
    rate_limit_retry_after: Annotated[int, Field(ge=0, le=3600, strict=True)] = 1
    # Set to start the dice again from this seed, for a reproducible run.
    seed: int | None = None


class AnswerFault(Enum):
    NONE = "none"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    ERROR_5XX = "error_5xx"
    DROP_RESPONSE = "drop_response"


@dataclass(frozen=True)
class AnswerPlan:
    """What happens to one request: its fault, whether the work is done, the status of a 5xx."""

    fault: AnswerFault = AnswerFault.NONE
    work_done: bool = True
    error_status: int = 503


class Dice:
    """The simulator's only source of chance, seedable, so a test run can be repeated."""

    def __init__(self, faults: Faults, seed: int | None = None) -> None:
        self.faults = faults
        self.random = random.Random(seed)  # noqa: S311 - a simulator's dice, seeded to repeat a run
        self.set(faults)

    def set(self, faults: Faults) -> None:
        if faults.seed is not None:
            self.random.seed(faults.seed)
        self.faults = faults

    def answer(self) -> AnswerPlan:
        faults, roll = self.faults, self.random.random
        # Rolled only when set, so that the other faults of a seed fall as they always did.
        if faults.rate_limited and roll() < faults.rate_limited:
            return AnswerPlan(AnswerFault.RATE_LIMITED, work_done=False)
        if roll() < faults.timeout:
            return AnswerPlan(AnswerFault.TIMEOUT, work_done=roll() < faults.timeout_work_done)
        if roll() < faults.error_5xx:
            return AnswerPlan(AnswerFault.ERROR_5XX, work_done=roll() < faults.error_5xx_work_done,
                              error_status=self.random.choice((500, 502, 503)))
        if roll() < faults.drop_response:
            return AnswerPlan(AnswerFault.DROP_RESPONSE)
        return AnswerPlan()

    def webhook_delays(self) -> list[float]:
        """When each copy of a new event's webhook goes out, in seconds from now: none when dropped."""
        faults, roll = self.faults, self.random.random
        if roll() < faults.drop_webhook:
            return []
        copies = 2 if roll() < faults.duplicate_webhook else 1
        return [(1 + roll()) / 2 * faults.webhook_delay_seconds if roll() < faults.delay_webhook else 0.0
                for _ in range(copies)]

    def jitter(self) -> float:
        """A factor in [0.5, 1) that spreads retries of failed deliveries apart."""
        return 0.5 + self.random.random() / 2
